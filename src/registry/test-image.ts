import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { canonicalJson } from "../shared/canonical-json.ts";
import type { ImageRecord } from "../image/image.ts";
import { saveImage, type StoredImage } from "../image/image-store.ts";
import { sha256 } from "../shared/hash.ts";

/**
 * For tests: an image with random "kernel", "rootfs" and (optionally) "disk" bytes, saved in
 * the current PITH_HOME's store with a record that hashes to its digest like a built one. It
 * never boots; it is for moving bytes through registries.
 */
export async function makeTestImage(name: string, options: { disk?: boolean; bytes?: number } = {}): Promise<StoredImage> {
  const work = await mkdtemp(join(tmpdir(), "pith-test-image-"));
  try {
    const bytes = options.bytes ?? 64 * 1024;
    const kernel = randomBytes(bytes);
    const rootfs = randomBytes(bytes / 2);
    const disk = options.disk ? randomBytes(bytes * 2) : undefined;
    await writeFile(join(work, "vmlinux"), kernel);
    await writeFile(join(work, "rootfs.cpio"), rootfs);
    if (disk) await writeFile(join(work, "runtime.ext2"), disk);
    const record = testRecord(name, kernel, rootfs, disk);
    return await saveImage(record, join(work, "vmlinux"), join(work, "rootfs.cpio"), disk ? join(work, "runtime.ext2") : undefined);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A record for these bytes, with its digest computed as the builder does. */
export function testRecord(name: string, kernel: Buffer, rootfs: Buffer, disk?: Buffer): ImageRecord {
  const record: Omit<ImageRecord, "digest"> = {
    schemaVersion: 1,
    name,
    runtime: disk ? "node" : "native",
    capabilities: { listen: [{ port: 8080, protocol: "tcp" }], egress: [], volumes: [], memoryMiB: 64, vcpus: 1 },
    readiness: { kind: "none" },
    readyTimeoutMs: 1000,
    argv: ["/app"],
    env: {},
    kernel: { configHash: "0".repeat(64), sourceVersion: "test", fragments: ["base"], options: 1, sha256: sha256(kernel), bytes: kernel.length },
    rootfs: { sha256: sha256(rootfs), bytes: rootfs.length, files: [] },
    ...(disk ? { disk: { sha256: sha256(disk), bytes: disk.length } } : {}),
  };
  return { ...record, digest: `sha256:${sha256(canonicalJson(record))}` } as ImageRecord;
}
