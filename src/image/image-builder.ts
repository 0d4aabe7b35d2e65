import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureKernel } from "../kernel/kernel-builder.ts";
import { fragmentsFor, kernelNeedsOf } from "../kernel/kernel-fragments.ts";
import type { AppManifest } from "../manifest/app-manifest.ts";
import { userError } from "../shared/errors.ts";
import { canonicalJson } from "../shared/canonical-json.ts";
import { sha256, sha256File } from "../shared/hash.ts";
import { silentProgress, type Progress } from "../shared/progress.ts";
import { writeCpio } from "./cpio/newc-writer.ts";
import type { ImageRecord } from "./image.ts";
import { saveImage, type StoredImage } from "./image-store.ts";
import { planRootfs } from "./rootfs.ts";
import { writeRuntimeDisk } from "./runtime-disk.ts";

/**
 * App manifest in, stored image out: the kernel its capabilities call for (cached), a root
 * filesystem with only what it runs, and a record whose digest covers both.
 */
export async function buildImage(manifest: AppManifest, progress: Progress = silentProgress): Promise<StoredImage> {
  const fragments = fragmentsFor(kernelNeedsOf(manifest));
  const kernel = await ensureKernel(fragments, progress);

  const plan = await planRootfs(manifest);
  const work = await mkdtemp(join(tmpdir(), "pith-build-"));
  try {
    const rootfsPath = join(work, "rootfs.cpio");
    const { bytes } = await writeCpio(plan.entries, rootfsPath);
    checkMemoryFits(manifest, bytes);
    const diskPath = join(work, "runtime.ext2");
    const disk = Object.keys(plan.disk).length > 0 ? await writeRuntimeDisk(plan.disk, diskPath) : undefined;
    const record: Omit<ImageRecord, "digest"> = {
      schemaVersion: 1,
      name: manifest.name,
      runtime: plan.runtime,
      capabilities: {
        listen: manifest.listen,
        egress: manifest.egress,
        volumes: manifest.volumes,
        memoryMiB: manifest.memoryMiB,
        vcpus: manifest.vcpus,
      },
      readiness: manifest.readiness,
      readyTimeoutMs: manifest.readyTimeoutMs,
      argv: plan.argv,
      env: manifest.env,
      kernel: {
        configHash: kernel.configHash,
        sourceVersion: kernel.sourceVersion,
        fragments: kernel.fragments,
        options: kernel.options,
        sha256: await sha256File(kernel.vmlinux),
        bytes: (await stat(kernel.vmlinux)).size,
      },
      rootfs: { sha256: await sha256File(rootfsPath), bytes, files: [...plan.files].sort((a, b) => a.path.localeCompare(b.path)) },
      ...(disk ? { disk: { sha256: await sha256File(diskPath), bytes: disk.bytes } } : {}),
    };
    const digest = `sha256:${sha256(canonicalJson(record))}`;
    return await saveImage({ ...record, digest } as ImageRecord, kernel.vmlinux, rootfsPath, disk ? diskPath : undefined);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The root filesystem lives in the machine's RAM: while the kernel unpacks it, both the archive
 * and its contents do. A machine too small for that fails at boot with an obscure "write error",
 * so an impossible memory limit is refused at build time instead.
 */
export function minimumMemoryMiB(rootfsBytes: number): number {
  const MiB = 1024 * 1024;
  return Math.ceil((2 * rootfsBytes) / MiB) + 48;
}

function checkMemoryFits(manifest: AppManifest, rootfsBytes: number): void {
  const minimum = minimumMemoryMiB(rootfsBytes);
  if (manifest.memoryMiB >= minimum) return;
  throw userError(
    "MEMORY_TOO_SMALL",
    `${join(manifest.dir, "pith.yaml")}: memory: ${manifest.memoryMiB}M is too small for this image: its root filesystem is ${Math.ceil(rootfsBytes / 1024 / 1024)} MiB and is unpacked into RAM at boot`,
    `set memory to at least ${minimum}M`,
  );
}
