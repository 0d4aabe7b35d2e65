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
