import { configDistance } from "./config-distance.ts";

/**
 * The rules for reusing a finished kernel build tree (`O=` dir) for another configuration: which
 * kept tree to start from, and which to evict. Pure, so the rules are tested without building.
 */

/** What a kept tree records about the build that made it. */
export interface KeptTree {
  /** Directory name under the kept-trees dir. */
  id: string;
  /**
   * Everything besides the configuration that decides an object's bytes: the source package's
   * version, the compiler's and linker's versions, the builder's make arguments and environment.
   * Kbuild notices a changed .config per symbol but not a changed compiler or source tree, so a
   * tree is reused only under the very same key.
   */
  reuseKey: string;
  /** The final .config the tree was built with. */
  config: string;
  bytes: number;
  /** Milliseconds since the epoch: when a build last started from it (or it was kept). */
  lastUsedAt: number;
}

export interface NearestTree {
  tree: KeptTree;
  /** Symbols whose value differs between the tree's configuration and the wanted one. */
  distance: number;
}

/** The kept tree, built under the same reuse key, whose configuration differs least; ties go to the most recently used. */
export function nearestTree(trees: readonly KeptTree[], reuseKey: string, config: string): NearestTree | undefined {
  let best: NearestTree | undefined;
  for (const tree of trees) {
    if (tree.reuseKey !== reuseKey) continue;
    const distance = configDistance(tree.config, config);
    if (!best || distance < best.distance || (distance === best.distance && tree.lastUsedAt > best.tree.lastUsedAt)) best = { tree, distance };
  }
  return best;
}

export interface KeepLimits {
  maxTrees: number;
  maxBytes: number;
}

/**
 * Trees to delete so that at most `maxTrees` remain within `maxBytes`: the most recently used are
 * kept, and once one does not fit, it and every tree used before it go.
 */
export function treesToEvict(trees: readonly KeptTree[], limits: KeepLimits): KeptTree[] {
  const newestFirst = [...trees].sort((a, b) => b.lastUsedAt - a.lastUsedAt);
  let bytes = 0;
  let kept = 0;
  while (kept < newestFirst.length && kept < limits.maxTrees && bytes + newestFirst[kept]!.bytes <= limits.maxBytes) {
    bytes += newestFirst[kept]!.bytes;
    kept++;
  }
  return newestFirst.slice(kept);
}
