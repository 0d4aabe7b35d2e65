import { existsSync } from "node:fs";
import { enabledOptions, readKernelConfig } from "../kernel/kernel-cache.ts";
import { readFragment, type FragmentName } from "../kernel/kernel-fragments.ts";
import { execFile } from "../shared/exec.ts";
import type { Capabilities, ImageFile } from "./image.ts";
import type { StoredImage } from "./image-store.ts";

/** What `pith inspect` reports: everything an image holds and may do. */
export interface ImageInspection {
  digest: string;
  name: string;
  runtime: "node" | "native";
  capabilities: Capabilities;
  files: ImageFile[];
  kernel: {
    configHash: string;
    options: number;
    sourceVersion: string;
    bytes: number;
    /** Each capability-driven fragment with the options it asks for. */
    fragments: { name: FragmentName; options: string[] }[];
  };
  size: { storedBytes: number; kernelBytes: number; rootfsBytes: number; diskBytes?: number };
  /** The same facts for Debian's generic cloud kernel, when its config is installed. */
  generic?: { kernel: string; options: number };
}

/** Debian ships its kernels' configs with linux-source (package linux-config-6.1). */
export const DEBIAN_CLOUD_CONFIG = "/usr/src/linux-config-6.1/config.amd64_none_cloud-amd64.xz";

export async function inspectImage(image: StoredImage): Promise<ImageInspection> {
  const { record } = image;
  const fragments = await Promise.all(
    record.kernel.fragments.map(async (name) => ({ name, options: enabledOptions(await readFragment(name)) })),
  );
  const config = await readKernelConfig(record.kernel.configHash).catch(() => undefined);
  const inspection: ImageInspection = {
    digest: record.digest,
    name: record.name,
    runtime: record.runtime,
    capabilities: record.capabilities,
    files: record.rootfs.files,
    kernel: {
      configHash: record.kernel.configHash,
      options: config ? enabledOptions(config).length : record.kernel.options,
      sourceVersion: record.kernel.sourceVersion,
      bytes: record.kernel.bytes,
      fragments,
    },
    size: {
      storedBytes: image.storedBytes,
      kernelBytes: record.kernel.bytes,
      rootfsBytes: record.rootfs.bytes,
      ...(record.disk ? { diskBytes: record.disk.bytes } : {}),
    },
  };
  const generic = await genericKernelOptions();
  if (generic !== undefined) inspection.generic = { kernel: "Debian 6.1 cloud-amd64", options: generic };
  return inspection;
}

async function genericKernelOptions(): Promise<number | undefined> {
  if (!existsSync(DEBIAN_CLOUD_CONFIG)) return undefined;
  const { stdout } = await execFile("xz", ["-dc", DEBIAN_CLOUD_CONFIG]).catch(() => ({ stdout: "" }));
  return stdout ? enabledOptions(stdout).length : undefined;
}
