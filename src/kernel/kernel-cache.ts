import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { kernelCacheDir } from "../shared/paths.ts";
import type { FragmentName } from "./kernel-fragments.ts";

/** A built kernel, stored at <PITH_HOME>/kernel/<configHash>/ beside its config. */
export interface KernelInfo {
  configHash: string;
  fragments: FragmentName[];
  sourceVersion: string;
  /** Options set to y or m in the final config. */
  options: number;
  vmlinux: string;
  vmlinuxBytes: number;
  buildSeconds: number;
  buildSteps: number;
  /** Of those steps, files compiled (absent: built before this was counted). */
  buildCompiles?: number;
  builtAt: string;
  /** Compiles the build took from ccache (absent: built without it). */
  compilerCache?: { compiles: number; hits: number };
  /** The kept build tree the kernel was built from (absent: a clean build): options apart, seconds to copy, and its configuration's hash. */
  reusedTree?: { distance: number; copySeconds: number; fromConfigHash?: string };
}

export const kernelDir = (configHash: string): string => join(kernelCacheDir(), configHash);

/** Beside a cached kernel: its symbols' addresses (`nm` order), for profiles; kernels built before it was kept have none. */
export const SYSTEM_MAP = "System.map";

export async function readKernelInfo(configHash: string): Promise<KernelInfo | undefined> {
  const dir = kernelDir(configHash);
  if (!existsSync(join(dir, "vmlinux"))) return undefined;
  const text = await readFile(join(dir, "kernel.json"), "utf8").catch(() => undefined);
  return text ? { ...(JSON.parse(text) as KernelInfo), vmlinux: join(dir, "vmlinux") } : undefined;
}

export async function listKernels(): Promise<KernelInfo[]> {
  const entries = await readdir(kernelCacheDir()).catch(() => [] as string[]);
  const infos = await Promise.all(entries.filter((e) => /^[0-9a-f]{64}$/.test(e)).map(readKernelInfo));
  return infos.filter((k): k is KernelInfo => k !== undefined).sort((a, b) => a.builtAt.localeCompare(b.builtAt));
}

export const readKernelConfig = (configHash: string): Promise<string> => readFile(join(kernelDir(configHash), "config"), "utf8");

export function enabledOptions(config: string): string[] {
  return config
    .split("\n")
    .filter((line) => /^CONFIG_[A-Z0-9_]+=[ym]$/.test(line))
    .map((line) => line.slice("CONFIG_".length, line.indexOf("=")));
}
