import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { AppManifest } from "../manifest/app-manifest.ts";
import { pithRoot } from "../shared/paths.ts";

/**
 * A kernel starts from `make tinyconfig` and gains a fragment only for what the app declared.
 * The set of fragments is deliberately small: every distinct combination is a ~5-minute build.
 */
/**
 * `balloon` is a density opt-in no manifest asks for (yet): bench/density builds kernels with it
 * to measure what an idle machine costs the host. (A tickless idle guest is in `base`.)
 */
export const FRAGMENTS = ["base", "network", "node-runtime", "runtime-disk", "volume", "smp", "balloon"] as const;
export type FragmentName = (typeof FRAGMENTS)[number];

export interface KernelNeeds {
  /** Declared `listen` ports or `egress` destinations. */
  network: boolean;
  /** What runs the app: Node.js (V8) or a native ELF program. */
  runtime: "node" | "native";
  vcpus: number;
  /** Declared `volumes`: writable ext4 disks. */
  volumes: boolean;
}

/** What an app's manifest asks of its kernel. */
export const kernelNeedsOf = (m: AppManifest): KernelNeeds => ({
  network: m.listen.length + m.egress.length > 0,
  runtime: m.source.kind === "entry" ? "node" : "native",
  vcpus: m.vcpus,
  volumes: m.volumes.length > 0,
});

export function fragmentsFor(needs: KernelNeeds): FragmentName[] {
  const fragments: FragmentName[] = ["base"];
  if (needs.network) fragments.push("network");
  if (needs.runtime === "node") fragments.push("node-runtime", "runtime-disk");
  if (needs.volumes) fragments.push("volume");
  if (needs.vcpus > 1) fragments.push("smp");
  return fragments;
}

/**
 * What most apps need, built ahead of the first app by `pith kernel prebuild`: a network server
 * (native or Node), the same with two vCPUs, a native batch program without a network, and a
 * network server with a volume.
 */
export const COMMON_KERNEL_NEEDS: readonly KernelNeeds[] = [
  { network: true, runtime: "native", vcpus: 1, volumes: false },
  { network: true, runtime: "node", vcpus: 1, volumes: false },
  { network: false, runtime: "native", vcpus: 1, volumes: false },
  { network: true, runtime: "native", vcpus: 2, volumes: false },
  { network: true, runtime: "node", vcpus: 2, volumes: false },
  { network: true, runtime: "native", vcpus: 1, volumes: true },
];

export const fragmentPath = (name: FragmentName): string => join(pithRoot(), "src", "kernel", "fragments", `${name}.config`);

export const readFragment = (name: FragmentName): Promise<string> => readFile(fragmentPath(name), "utf8");

export function parseFragmentNames(list: string): FragmentName[] {
  const names = list.split(",").map((s) => s.trim()).filter(Boolean);
  for (const name of names) {
    if (!(FRAGMENTS as readonly string[]).includes(name)) throw new Error(`unknown kernel fragment "${name}" (known: ${FRAGMENTS.join(", ")})`);
  }
  if (!names.includes("base")) names.unshift("base");
  return names as FragmentName[];
}
