import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { KeptTree } from "../../src/kernel/build-tree-reuse.ts";
import { configDistance } from "../../src/kernel/config-distance.ts";
import { KeptBuildTrees } from "../../src/kernel/kept-build-trees.ts";
import { keptBuildTrees } from "../../src/kernel/kept-trees-config.ts";
import { compileKernel, withStableBuildDir } from "../../src/kernel/kernel-builder.ts";
import { listKernels, readKernelConfig, type KernelInfo } from "../../src/kernel/kernel-cache.ts";
import { ensureLinuxSource, linuxSourceVersion } from "../../src/kernel/linux-source.ts";
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

/** The cached kernel and kept tree of different configurations that are closest to each other. */
async function nearestPair(trees: KeptTree[], kernels: KernelInfo[]): Promise<Pair | undefined> {
  let best: Pair | undefined;
  for (const kernel of kernels) {
    const config = await readKernelConfig(kernel.configHash).catch(() => undefined);
    if (!config) continue;
    for (const tree of trees) {
      const distance = configDistance(tree.config, config);
      if (distance > 0 && (!best || distance < best.distance)) best = { tree, kernel, config, distance };
    }
  }
  return best;
}

// Waiting for a concurrent real build (up to ~15 min under load) is not this test's cost; the
// build itself is about a minute on a quiet host.
test("a cached kernel rebuilt from another configuration's kept tree has the cached bytes and compiles far fewer objects", { timeout: 40 * 60_000 }, async (t) => {
  if (!existsSync("/usr/src/linux-source-6.1.tar.xz")) return t.skip("needs Debian's linux-source-6.1");
  const sourceVersion = await linuxSourceVersion();
  const kernels = (await listKernels()).filter((k) => k.sourceVersion === sourceVersion);
  const real = keptBuildTrees();
  const pair = await nearestPair(await real.list(), kernels);
  if (!pair) return t.skip(`needs a kept build tree in ${real.dir} and a cached kernel of another configuration: run \`pith kernel prebuild\``);
  const clean = kernels.filter((k) => !k.reusedTree && k.buildSteps > 0).sort((a, b) => b.buildSteps - a.buildSteps)[0];
  if (!clean) return t.skip("needs a kernel built clean in the cache to compare with (its step count)");

  const source = await ensureLinuxSource();
  await mkdir(join(kernelCacheDir(), "build"), { recursive: true });
  const scratch = await mkdtemp(join(kernelCacheDir(), "build", "reuse-test-"));
  t.after(() => rm(scratch, { recursive: true, force: true }));
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
