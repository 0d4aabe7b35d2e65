import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pithRoot } from "../shared/paths.ts";

/**
 * A kernel starts from `make tinyconfig` and gains a fragment only for what the app declared.
 * The set of fragments is deliberately small: every distinct combination is a ~5-minute build.
 */
/**
 * `tickless` and `balloon` are density opt-ins no manifest asks for (yet): bench/density builds
 * kernels with them to measure what an idle machine costs the host.
 */
export const FRAGMENTS = ["base", "network", "node-runtime", "runtime-disk", "smp", "tickless", "balloon"] as const;
export type FragmentName = (typeof FRAGMENTS)[number];

export interface KernelNeeds {
  /** Declared `listen` ports or `egress` destinations. */
  network: boolean;
  /** What runs the app: Node.js (V8) or a native ELF program. */
  runtime: "node" | "native";
  vcpus: number;
}

export function fragmentsFor(needs: KernelNeeds): FragmentName[] {
  const fragments: FragmentName[] = ["base"];
  if (needs.network) fragments.push("network");
  if (needs.runtime === "node") fragments.push("node-runtime", "runtime-disk");
  if (needs.vcpus > 1) fragments.push("smp");
  return fragments;
}

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
