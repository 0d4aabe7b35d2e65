import assert from "node:assert/strict";
import { test } from "node:test";
import { nearestTree, treesToEvict, type KeptTree } from "./build-tree-reuse.ts";
import { configDistance } from "./config-distance.ts";

const config = (...lines: string[]): string => ["# comment", ...lines, ""].join("\n");
const tree = (id: string, fields: Partial<KeptTree> = {}): KeptTree => ({ id, reuseKey: "k", config: "", bytes: 100, lastUsedAt: 0, ...fields });

test("the distance counts symbols whose value differs; unset and absent are both n", () => {
  const a = config("CONFIG_NET=y", "CONFIG_INET=y", "CONFIG_LOG_BUF_SHIFT=17", "# CONFIG_SMP is not set");
  assert.equal(configDistance(a, a), 0);
  assert.equal(configDistance(a, config("CONFIG_NET=y", "CONFIG_INET=y", "CONFIG_LOG_BUF_SHIFT=17")), 0);
  assert.equal(configDistance(a, config("CONFIG_NET=y", "CONFIG_LOG_BUF_SHIFT=14", "CONFIG_SMP=y")), 3);
  assert.equal(configDistance(config('CONFIG_CMDLINE="a"'), config('CONFIG_CMDLINE="b"')), 1);
});

test("the nearest tree is the one whose configuration differs least", () => {
  const wanted = config("CONFIG_A=y", "CONFIG_B=y", "CONFIG_C=y");
  const far = tree("far", { config: config("CONFIG_D=y") });
  const near = tree("near", { config: config("CONFIG_A=y", "CONFIG_B=y") });
  assert.deepEqual(nearestTree([far, near], "k", wanted), { tree: near, distance: 1 });
  assert.equal(nearestTree([], "k", wanted), undefined);
});

test("a tree built with another source, compiler or flags is never chosen, however near", () => {
  const wanted = config("CONFIG_A=y");
  const sameConfigOtherKey = tree("other", { reuseKey: "gcc-13", config: wanted });
  const farSameKey = tree("far", { config: config("CONFIG_Z=y") });
  assert.equal(nearestTree([sameConfigOtherKey], "k", wanted), undefined);
  assert.equal(nearestTree([sameConfigOtherKey, farSameKey], "k", wanted)?.tree.id, "far");
});

test("between equally near trees the most recently used wins", () => {
  const wanted = config("CONFIG_A=y");
  const older = tree("older", { config: config("CONFIG_B=y"), lastUsedAt: 1 });
  const newer = tree("newer", { config: config("CONFIG_C=y"), lastUsedAt: 2 });
  assert.equal(nearestTree([older, newer], "k", wanted)?.tree.id, "newer");
  assert.equal(nearestTree([newer, older], "k", wanted)?.tree.id, "newer");
});

test("eviction keeps the most recently used within the count and the size", () => {
  const trees = [tree("a", { lastUsedAt: 1 }), tree("b", { lastUsedAt: 3 }), tree("c", { lastUsedAt: 2 })];
  assert.deepEqual(treesToEvict(trees, { maxTrees: 2, maxBytes: 1e9 }).map((t) => t.id), ["a"]);
  assert.deepEqual(treesToEvict(trees, { maxTrees: 5, maxBytes: 150 }).map((t) => t.id), ["c", "a"]);
  assert.deepEqual(treesToEvict(trees, { maxTrees: 5, maxBytes: 300 }), []);
  assert.deepEqual(treesToEvict(trees, { maxTrees: 0, maxBytes: 1e9 }).map((t) => t.id), ["b", "c", "a"]);
});

test("a tree larger than the whole limit is not kept, and neither is anything used before it", () => {
  const trees = [tree("small-old", { lastUsedAt: 1, bytes: 10 }), tree("huge-new", { lastUsedAt: 2, bytes: 1000 })];
  assert.deepEqual(treesToEvict(trees, { maxTrees: 5, maxBytes: 500 }).map((t) => t.id), ["huge-new", "small-old"]);
});
