import type { EgressRule, ListenPort, Readiness, VolumeDeclaration } from "../manifest/app-manifest.ts";
import type { FragmentName } from "../kernel/kernel-fragments.ts";

/**
 * An image: a kernel specialised for one app, a root filesystem holding that app and what it
 * needs to run, and this record of both. Immutable and content-addressed: `digest` is the hash of
 * this record without it, and the record holds the hashes of the kernel and root filesystem, so
 * the same inputs always give the same digest.
 */
export interface ImageRecord {
  schemaVersion: 1;
  digest: string;
  name: string;
  runtime: "node" | "native";
  capabilities: Capabilities;
  readiness: Readiness;
  readyTimeoutMs: number;
  /** What init executes, and the environment baked into the image. */
  argv: string[];
  env: Record<string, string>;
  kernel: {
    configHash: string;
    sourceVersion: string;
    fragments: FragmentName[];
    /** Options enabled (y) in the final config. */
    options: number;
    sha256: string;
    bytes: number;
  };
  rootfs: {
    sha256: string;
    bytes: number;
    files: ImageFile[];
  };
  /** The read-only runtime disk (ext2), when the runtime is large enough to need one. */
  disk?: { sha256: string; bytes: number };
}

/** Everything the image may do. Whatever is not here, the machine cannot do. */
export interface Capabilities {
  listen: ListenPort[];
  egress: EgressRule[];
  /** Writable disks the machine mounts (each attached to one machine at a time). */
  volumes: VolumeDeclaration[];
  memoryMiB: number;
  vcpus: number;
}

export interface ImageFile {
  path: string;
  kind: "file" | "dir" | "symlink" | "chardev";
  size: number;
  /**
   * Why it is there: the app, its runtime, a shared library, Pith's init, declared in `files:`
   * (data), or a Node package shipped beside the bundle (module).
   */
  role: "app" | "runtime" | "library" | "init" | "config" | "system" | "data" | "module";
  /** For `files:`, the path in the app directory it was copied from. */
  from?: string;
  /** Where it lives: the initramfs (default, in RAM) or the read-only runtime disk. */
  on?: "disk";
}

export const shortDigest = (digest: string): string => digest.replace(/^sha256:/, "").slice(0, 12);
