import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { KeptTree } from "../../src/kernel/build-tree-reuse.ts";
import { configDistance, configSymbols } from "../../src/kernel/config-distance.ts";
import { KeptBuildTrees } from "../../src/kernel/kept-build-trees.ts";
import { keptBuildTrees } from "../../src/kernel/kept-trees-config.ts";
import { compileKernel, makeConfig, withStableBuildDir } from "../../src/kernel/kernel-builder.ts";
import { FRAGMENTS, type FragmentName } from "../../src/kernel/kernel-fragments.ts";
import { listKernels, readKernelConfig, type KernelInfo } from "../../src/kernel/kernel-cache.ts";
import { ensureLinuxSource, linuxSourceVersion, type LinuxSource } from "../../src/kernel/linux-source.ts";
import { PithError } from "../../src/shared/errors.ts";
import { execFile } from "../../src/shared/exec.ts";
import { kernelCacheDir } from "../../src/shared/paths.ts";

/**
 * The reuse path with real kernels: a configuration already in the kernel cache is built again
 * from the kept build tree of another configuration (the nearest such pair, so it stays cheap),
 * and must give the cached kernel's bytes while compiling a fraction of a clean build's objects.
 * It reads the real kernel cache and kept trees and changes neither: the tree is copied to a
 * scratch store, and the build runs in the builders' one stable build dir under their lock, so a
 * concurrent real build waits for it (or it for the build), never shares the dir.
 */

const sha256 = async (path: string) => createHash("sha256").update(await readFile(path)).digest("hex");

interface Pair {
  tree: KeptTree;
  kernel: KernelInfo;
  config: string;
  distance: number;
}

/**
 * Options a fragment may change that most objects read, so that a pair differing in one is no
 * test of the reuse path: SMP (the vCPU sides build apart, see base.config) and the `balloon`
 * density opt-in's MEMORY_BALLOON.
 */
const HEADER_LEVEL_IN_FRAGMENTS = ["SMP", "MEMORY_BALLOON"];

/**
 * The cached kernel and kept tree of different configurations that are closest to each other,
 * among kernels of today's fragments (a cache also holds kernels of older `base` definitions,
 * which differ from today's trees in header-level options) and differing in leaf options only.
 */
async function nearestPair(source: LinuxSource, scratch: string, trees: KeptTree[], kernels: KernelInfo[]): Promise<Pair | undefined> {
  const candidates: Pair[] = [];
  for (const kernel of kernels) {
    if (!kernel.fragments.every((f) => (FRAGMENTS as readonly string[]).includes(f))) continue;
    const config = await readKernelConfig(kernel.configHash).catch(() => undefined);
    if (!config) continue;
    const symbols = configSymbols(config);
    for (const tree of trees) {
      const treeSymbols = configSymbols(tree.config);
      if (HEADER_LEVEL_IN_FRAGMENTS.some((o) => (symbols.get(o) ?? "n") !== (treeSymbols.get(o) ?? "n"))) continue;
      const distance = configDistance(tree.config, config);
      if (distance > 0) candidates.push({ tree, kernel, config, distance });
    }
  }
  // Nearest first; the first whose kernel today's fragments still make (a config takes seconds).
  const current = new Map<string, boolean>();
  for (const pair of candidates.sort((x, y) => x.distance - y.distance)) {
    const hash = pair.kernel.configHash;
    if (!current.has(hash)) {
      const today = await makeConfig(source, await mkdtemp(join(scratch, "config-")), pair.kernel.fragments as FragmentName[]);
      current.set(hash, createHash("sha256").update(today).digest("hex") === hash);
    }
    if (current.get(hash)) return pair;
  }
  return undefined;
}

// Waiting for a concurrent real build (up to ~15 min under load) is not this test's cost; the
// build itself is about a minute on a quiet host.
test("a cached kernel rebuilt from another configuration's kept tree has the cached bytes and compiles far fewer objects", { timeout: 40 * 60_000 }, async (t) => {
  if (!existsSync("/usr/src/linux-source-6.1.tar.xz")) return t.skip("needs Debian's linux-source-6.1");
  const sourceVersion = await linuxSourceVersion();
  const kernels = (await listKernels()).filter((k) => k.sourceVersion === sourceVersion);
  const real = keptBuildTrees();
  const source = await ensureLinuxSource();
  await mkdir(join(kernelCacheDir(), "build"), { recursive: true });
  const scratch = await mkdtemp(join(kernelCacheDir(), "build", "reuse-test-"));
  t.after(() => rm(scratch, { recursive: true, force: true }));
  const pair = await nearestPair(source, scratch, await real.list(), kernels);
  if (!pair) return t.skip(`needs a kept build tree in ${real.dir} and a cached kernel of another configuration of today's fragments: run \`pith kernel prebuild\``);
  const clean = kernels.filter((k) => !k.reusedTree && k.buildSteps > 0).sort((a, b) => b.buildSteps - a.buildSteps)[0];
  if (!clean) return t.skip("needs a kernel built clean in the cache to compare with (its step count)");
  await mkdir(join(scratch, "trees"));
  await execFile("cp", ["-a", join(real.dir, pair.tree.id), join(scratch, "trees", pair.tree.id)]);
  const onlyThatTree = new KeptBuildTrees(join(scratch, "trees"), { maxTrees: 1, maxBytes: 2 ** 40 });

  const compiled = await withStableBuildDir(async (buildDir) => {
    try {
      const result = await compileKernel(source, buildDir, pair.config, { trees: onlyThatTree, requireTree: true });
      return { ...result, sha256: await sha256(result.vmlinux) };
    } catch (e) {
      if (e instanceof PithError && e.code === "KERNEL_NO_REUSABLE_TREE") return undefined;
      throw e;
    } finally {
      await rm(buildDir, { recursive: true, force: true });
    }
  });
  if (!compiled) return t.skip("the kept tree was built under another reuse key (toolchain, ccache setting): rebuild the kernels with this setup");

  t.diagnostic(
    `${pair.kernel.fragments.join("+")} from a tree ${pair.distance} options away: ${compiled.steps} steps in ${compiled.seconds.toFixed(0)} s (clean: ${clean.buildSteps} steps, ${clean.fragments.join("+")})`,
  );
  assert.equal(compiled.reusedTree?.distance, pair.distance);
  assert.equal(compiled.sha256, await sha256(pair.kernel.vmlinux), "the same bytes as the cached kernel");
  assert.ok(compiled.steps * 4 < clean.buildSteps, `${compiled.steps} steps from the kept tree, against ${clean.buildSteps} for a clean build`);
});
