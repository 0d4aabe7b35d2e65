import { join } from "node:path";
import { userError } from "../shared/errors.ts";
import { kernelCacheDir } from "../shared/paths.ts";
import type { KeepLimits } from "./build-tree-reuse.ts";
import { KeptBuildTrees } from "./kept-build-trees.ts";

/** One tree per set `pith kernel prebuild` builds; a lean kernel's tree, trimmed, is ~60 MiB (base+network: 62 MiB). */
const DEFAULT_LIMITS: KeepLimits = { maxTrees: 6, maxBytes: 2 ** 30 };

/**
 * The kept build trees of this PITH_HOME. `PITH_KERNEL_KEEP_TREES` sets how many (0 keeps none and
 * every build is clean), `PITH_KERNEL_TREES_MAX_MB` their total size.
 */
export function keptBuildTrees(env: NodeJS.ProcessEnv = process.env): KeptBuildTrees {
  return new KeptBuildTrees(join(kernelCacheDir(), "trees"), keepLimits(env));
}

export function keepLimits(env: NodeJS.ProcessEnv): KeepLimits {
  return {
    maxTrees: count(env, "PITH_KERNEL_KEEP_TREES") ?? DEFAULT_LIMITS.maxTrees,
    maxBytes: (count(env, "PITH_KERNEL_TREES_MAX_MB") ?? DEFAULT_LIMITS.maxBytes / 2 ** 20) * 2 ** 20,
  };
}

function count(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text === "") return undefined;
  if (!/^\d{1,9}$/.test(text)) throw userError("KERNEL_TREES_LIMIT_INVALID", `${name}=${JSON.stringify(text)} is not a whole number`, `set ${name} to 0 or more, or unset it`);
  return Number(text);
}
