/** The normalised form of an app's pith.yaml: every default applied, every path absolute. */
export interface AppManifest {
  name: string;
  /** Absolute directory holding the manifest; relative paths in it resolve from here. */
  dir: string;
  source: { kind: "entry"; path: string } | { kind: "binary"; path: string };
  args: string[];
  memoryMiB: number;
  vcpus: number;
  listen: ListenPort[];
  egress: EgressRule[];
  env: Record<string, string>;
  readiness: Readiness;
  readyTimeoutMs: number;
  /** Writable ext4 disks kept across machines, in declaration order (the guest's vdb, vdc...). */
  volumes: VolumeDeclaration[];
  /** `files:` expanded: every file to copy into the image, sorted by where it was declared. */
  files: DeclaredFile[];
  /** `node:`, for entry apps. */
  node: NodeOptions;
}

/** One file from `files:`, read-only in the image. */
export interface DeclaredFile {
  /** Path relative to the app directory, as the pattern matched it. */
  from: string;
  /** The host file to copy (symlinks resolved, always inside the app directory). */
  source: string;
  /** Absolute path in the image. */
  dest: string;
  /** Any execute bit on the host: the copy is 0555 rather than 0444. */
  executable: boolean;
  /**
   * The file as checked (device and inode): the build copies it only if the path still leads to
   * it, so a file swapped for a symlink to a host file after the check is refused, not copied.
   */
  identity: { dev: number; ino: number };
  /** The line of pith.yaml that declared it, for problems found while building. */
  line: number;
}

export interface NodeOptions {
  /** Packages shipped in node_modules instead of bundled (besides those with native addons). */
  external: string[];
  /** Ship a V8 code cache of the app, made at build time (CommonJS bundles only; see image/code-cache.ts). */
  codeCache: boolean;
}

export type SourceKind = AppManifest["source"]["kind"];
export type Protocol = "http" | "tcp";
export interface ListenPort { port: number; protocol: Protocol }
export interface EgressRule { host: string; port: number }
export interface VolumeDeclaration { name: string; mount: string; sizeMiB: number }

export type Readiness =
  | { kind: "call" }
  | { kind: "none" }
  | { kind: "http"; port: number; path: string }
  | { kind: "tcp"; port: number };
