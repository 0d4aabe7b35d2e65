import { existsSync } from "node:fs";
import { copyFile, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { systemError } from "../shared/errors.ts";
import { execFile } from "../shared/exec.ts";
import { withFileLock } from "../shared/file-lock.ts";
import { sha256 } from "../shared/hash.ts";
import { kernelCacheDir } from "../shared/paths.ts";
import { silentProgress, type Progress } from "../shared/progress.ts";
import { fragmentPath, readFragment, type FragmentName } from "./kernel-fragments.ts";
import { enabledOptions, kernelDir, listKernels, readKernelInfo, SYSTEM_MAP, type KernelInfo } from "./kernel-cache.ts";
import { ensureLinuxSource, linuxSourceVersion, localVersion, type LinuxSource } from "./linux-source.ts";
import { ensurePrivateDir } from "../shared/private-files.ts";
import { compilerCacheEnabled, compilerCacheFor, type CompilerCache, type CompilerCacheUsage } from "./compiler-cache.ts";
import { buildReuseKey } from "./build-identity.ts";
import { keptBuildTrees } from "./kept-trees-config.ts";
import type { CheckedOutTree, KeptBuildTrees } from "./kept-build-trees.ts";

/**
 * Kbuild stamps the build's time, user, host and build number (.version, which it increments on
 * every link of a tree) into the kernel; fixed, the same config gives the same bytes, whether
 * built clean or from a reused tree.
 */
const REPRODUCIBLE_KBUILD = {
  KBUILD_BUILD_TIMESTAMP: "1970-01-01 00:00:00 UTC",
  KBUILD_BUILD_USER: "pith",
  KBUILD_BUILD_HOST: "pith",
  KBUILD_BUILD_VERSION: "1",
};

/** Objects a lean tinyconfig-based build compiles; refined by every build that finishes. */
const DEFAULT_EXPECTED_STEPS = 1000;

/**
 * Returns the kernel for a set of fragments, building it only if no kernel with the same final
 * configuration is cached. The cache key is the hash of the final .config, so two fragment sets
 * that resolve to the same configuration share one build; a second, cheaper index from the
 * fragments' text to that hash skips even the config step on the common path.
 */
export async function ensureKernel(fragments: FragmentName[], progress: Progress = silentProgress): Promise<KernelInfo> {
  // A cached kernel needs only the source's version, not its 1.3 GB extracted: a new PITH_HOME
  // given built kernels uses them at once.
  const { fragmentsKey, indexFile } = await fragmentsIndex(await linuxSourceVersion(), fragments);
  const cached = await indexedKernel(indexFile);
  if (cached) return cached;
  const source = await ensureLinuxSource(progress);

  const configDir = join(kernelCacheDir(), "build", `${fragmentsKey.slice(0, 16)}-${process.pid}`);
  await rm(configDir, { recursive: true, force: true });
  await ensurePrivateDir(configDir);
  try {
    const config = await makeConfig(source, configDir, fragments);
    const configHash = sha256(config);
    const info = await withFileLock(join(kernelCacheDir(), `${configHash}.lock`), async () => {
      return (await readKernelInfo(configHash)) ?? (await buildKernel(source, configHash, fragments, config, progress));
    });
    await ensurePrivateDir(join(kernelCacheDir(), "by-fragments"));
    await writeFile(indexFile, configHash);
    return info;
  } finally {
    await rm(configDir, { recursive: true, force: true });
  }
}

/**
 * Every build of this PITH_HOME compiles in this one directory, one at a time (under its lock):
 * the kernel's host tools (objtool above all, which every object depends on) record their
 * dependencies by absolute path, so a tree moved elsewhere rebuilds objtool and then every object.
 * Kept trees are copied back here to be reused.
 */
const stableBuildDir = (): string => join(kernelCacheDir(), "build", "tree");

/**
 * Runs `work` with the stable build dir to itself: every kernel build of this PITH_HOME, and
 * anything else that compiles there (the reuse test), waits for the others.
 */
export async function withStableBuildDir<T>(work: (buildDir: string) => Promise<T>, onWait?: (pid: number) => void): Promise<T> {
  const buildDir = stableBuildDir();
  await ensurePrivateDir(dirname(buildDir));
  return withFileLock(`${buildDir}.lock`, () => work(buildDir), onWait);
}

/** The kernel already built for these fragments, or undefined: never builds (bench/density skips what is not built). */
export async function cachedKernel(fragments: FragmentName[]): Promise<KernelInfo | undefined> {
  return indexedKernel((await fragmentsIndex(await linuxSourceVersion(), fragments)).indexFile);
}

/** The fragments' text names their kernel in a small index, so a cached kernel is found without configuring one. */
async function fragmentsIndex(sourceVersion: string, fragments: FragmentName[]): Promise<{ fragmentsKey: string; indexFile: string }> {
  const texts = await Promise.all(fragments.map(readFragment));
  const fragmentsKey = sha256(JSON.stringify([sourceVersion, fragments, texts]));
  return { fragmentsKey, indexFile: join(kernelCacheDir(), "by-fragments", fragmentsKey) };
}

async function indexedKernel(indexFile: string): Promise<KernelInfo | undefined> {
  const indexed = await readFile(indexFile, "utf8").catch(() => undefined);
  return indexed ? readKernelInfo(indexed.trim()) : undefined;
}

interface MakeOptions {
  onLine?: (line: string) => void;
  compilerCache?: CompilerCache;
}

function make(source: LinuxSource, workDir: string, targets: string[], options: MakeOptions = {}) {
  const cache = options.compilerCache;
  return execFile("make", ["-C", source.dir, `O=${workDir}`, "ARCH=x86_64", ...(cache?.makeArgs ?? []), ...targets], {
    code: "KERNEL_BUILD_FAILED",
    env: { ...process.env, ...REPRODUCIBLE_KBUILD, ...cache?.env },
    ...(options.onLine ? { onStdoutLine: options.onLine } : {}),
  });
}

/** tinyconfig, then our fragments merged on top, then olddefconfig to settle dependencies. */
export async function makeConfig(source: LinuxSource, workDir: string, fragments: FragmentName[]): Promise<string> {
  await make(source, workDir, ["-s", "tinyconfig"]);
  await execFile(join(source.dir, "scripts/kconfig/merge_config.sh"), ["-m", "-O", workDir, join(workDir, ".config"), ...fragments.map(fragmentPath)], {
    cwd: workDir,
    code: "KERNEL_CONFIG_FAILED",
  });
  // The patches are in the config (and so in its hash, the kernel's cache key), and in `uname -r`.
  await execFile(join(source.dir, "scripts/config"), ["--file", join(workDir, ".config"), "--set-str", "LOCALVERSION", localVersion(source)], { code: "KERNEL_CONFIG_FAILED" });
  await make(source, workDir, ["-s", "olddefconfig"]);
  return readFile(join(workDir, ".config"), "utf8");
}

export interface CompiledKernel {
  /** The stripped vmlinux inside the work dir. */
  vmlinux: string;
  steps: number;
  /** Of those steps, the C and assembler files compiled (Kbuild's CC and AS lines). */
  compiles: number;
  seconds: number;
  /** Compiles answered by ccache, when it was used. */
  compilerCache?: CompilerCacheUsage;
  /** The kept tree the build started from, when one was reused. */
  reusedTree?: CheckedOutTree;
  /** Why the build from a kept tree failed, when it did and was then built clean. */
  failedReuse?: string;
  /** Source, toolchain and flags of this build: a tree is reused only by a build under the same key. */
  reuseKey: string;
}

export interface CompileOptions {
  /** False builds without ccache (the benchmark's clean build); a string is a ccache directory of its own. */
  compilerCache?: boolean | string;
  onStep?: (steps: number) => void;
  /** Start from a copy of the nearest of these kept trees instead of an empty directory. */
  trees?: KeptBuildTrees;
  /** Refuse (KERNEL_NO_REUSABLE_TREE) rather than build clean when no kept tree can be reused. */
  requireTree?: boolean;
}

/**
 * Compiles `config`'s vmlinux in `buildDir` (replaced: emptied, or a copy of the nearest kept
 * tree, and emptied for one clean retry if the build from that copy fails) and strips it. The caller owns `buildDir` alone, and keeps it at one path across builds
 * whose trees are reused (see stableBuildDir).
 */
export async function compileKernel(source: LinuxSource, buildDir: string, config: string, options: CompileOptions = {}): Promise<CompiledKernel> {
  const started = Date.now();
  const cache =
    options.compilerCache === false ? undefined : await compilerCacheFor(dirname(buildDir), typeof options.compilerCache === "string" ? options.compilerCache : undefined);
  try {
    await rm(buildDir, { recursive: true, force: true });
    const reuseKey = await buildReuseKey(source, buildDir, cache?.makeArgs ?? [], REPRODUCIBLE_KBUILD);
    const reusedTree = options.trees ? await options.trees.checkoutNearest(reuseKey, config, buildDir) : undefined;
    if (!reusedTree && options.requireTree) throw systemError("KERNEL_NO_REUSABLE_TREE", "no kept build tree was built under this build's reuse key (source, toolchain, flags, build dir)");
    const compile = (fresh: boolean): Promise<Compiled> =>
      compileIn(source, buildDir, config, { fresh, ...(cache ? { cache } : {}), ...(options.onStep ? { onStep: options.onStep } : {}) });
    let built: Compiled;
    let failedReuse: string | undefined;
    try {
      built = await compile(!reusedTree);
    } catch (error) {
      if (!reusedTree || !options.trees) throw error;
      // A kept tree can be wrong in ways Kbuild cannot see (an object a killed build left
      // half-written with a fresh time, a disk that filled during the copy): the build is
      // retried once from an empty directory, and the tree is dropped so no later build tries it.
      failedReuse = (error as Error).message.split("\n")[0];
      await options.trees.discard(reusedTree.id);
      built = await compile(true);
    }
    return {
      ...built,
      seconds: (Date.now() - started) / 1000,
      reuseKey,
      ...(cache ? { compilerCache: await cache.usage() } : {}),
      ...(reusedTree && !failedReuse ? { reusedTree } : {}),
      ...(failedReuse ? { failedReuse } : {}),
    };
  } finally {
    await cache?.release();
  }
}

interface CompileInOptions {
  /** Start from an empty `buildDir` (else it holds a kept tree's copy). */
  fresh: boolean;
  cache?: CompilerCache;
  onStep?: (steps: number) => void;
}

type Compiled = Pick<CompiledKernel, "vmlinux" | "steps" | "compiles">;

/** Settles the config in `buildDir`, compiles vmlinux there and strips it; counts Kbuild's steps. */
async function compileIn(source: LinuxSource, buildDir: string, config: string, options: CompileInOptions): Promise<Compiled> {
  if (options.fresh) {
    await rm(buildDir, { recursive: true, force: true });
    await ensurePrivateDir(buildDir);
  }
  await settleConfig(source, buildDir, config);
  let steps = 0;
  let compiles = 0;
  await make(source, buildDir, [`-j${availableParallelism()}`, "vmlinux"], {
    ...(options.cache ? { compilerCache: options.cache } : {}),
    onLine: (line) => {
      // Kbuild prints one "  CC      path" style line per step.
      if (!/^\s+[A-Z][A-Z0-9_]*\s/.test(line)) return;
      steps++;
      if (/^\s+(CC|AS)\s/.test(line)) compiles++;
      options.onStep?.(steps);
    },
  });
  // Symbols are for debuggers; the machine boots the same without them, and faster to load.
  const vmlinux = join(buildDir, "vmlinux.stripped");
  await execFile("strip", ["--strip-all", "-o", vmlinux, join(buildDir, "vmlinux")], { code: "KERNEL_BUILD_FAILED" });
  return { vmlinux, steps, compiles };
}

/**
 * Writes the wanted .config and lets Kconfig settle it. In a reused tree Kbuild then sees a
 * .config newer than its own record of the configuration, touches include/config/<SYMBOL> for
 * each symbol that changed, and recompiles exactly the objects that read one of them.
 */
async function settleConfig(source: LinuxSource, buildDir: string, config: string): Promise<void> {
  await writeFile(join(buildDir, ".config"), config);
  await make(source, buildDir, ["-s", "olddefconfig"]);
  const settled = await readFile(join(buildDir, ".config"), "utf8");
  if (settled !== config) {
    throw systemError("KERNEL_CONFIG_DRIFT", `the kernel config changed when settled in ${buildDir}: refusing to build a kernel other than the one asked for`);
  }
}

function buildKernel(source: LinuxSource, configHash: string, fragments: FragmentName[], config: string, progress: Progress): Promise<KernelInfo> {
  return withStableBuildDir(
    (buildDir) => buildKernelIn(source, buildDir, configHash, fragments, config, progress),
    (pid) => progress.update(0, `waiting for the kernel build of process ${pid} to finish`),
  );
}

async function buildKernelIn(
  source: LinuxSource,
  buildDir: string,
  configHash: string,
  fragments: FragmentName[],
  config: string,
  progress: Progress,
): Promise<KernelInfo> {
  const expected = await expectedSteps();
  progress.update(0, `compiling kernel ${configHash.slice(0, 12)} (${fragments.join("+")})${compilerCacheEnabled() ? ", through ccache" : ""}`);
  const trees = keptBuildTrees();
  const compiled = await compileKernel(source, buildDir, config, {
    trees,
    onStep: (steps) => progress.update(Math.min(0.99, steps / expected), `${steps}/~${expected} steps, kernel ${configHash.slice(0, 12)}`),
  });

  const staging = join(kernelCacheDir(), `.staging-${configHash}-${process.pid}`);
  await rm(staging, { recursive: true, force: true });
  await ensurePrivateDir(staging);
  await copyFile(compiled.vmlinux, join(staging, "vmlinux"));
  // The stripped kernel's addresses, by name: what a profile of a boot resolves them with (bench/boot/guest-profile.ts).
  await copyFile(join(buildDir, "System.map"), join(staging, SYSTEM_MAP));
  await writeFile(join(staging, "config"), config);
  const info: KernelInfo = {
    configHash,
    fragments,
    sourceVersion: source.version,
    options: enabledOptions(config).length,
    vmlinuxBytes: (await stat(compiled.vmlinux)).size,
    buildSeconds: Math.round(compiled.seconds),
    buildSteps: compiled.steps,
    buildCompiles: compiled.compiles,
    builtAt: new Date().toISOString(),
    vmlinux: join(kernelDir(configHash), "vmlinux"),
    ...(compiled.compilerCache ? { compilerCache: compiled.compilerCache } : {}),
    ...(compiled.reusedTree ? { reusedTree: { distance: compiled.reusedTree.distance, copySeconds: compiled.reusedTree.copySeconds, fromConfigHash: compiled.reusedTree.configHash } } : {}),
  };
  await writeFile(join(staging, "kernel.json"), JSON.stringify(info, null, 2) + "\n");
  if (existsSync(kernelDir(configHash))) await rm(kernelDir(configHash), { recursive: true, force: true });
  await rename(staging, kernelDir(configHash));
  // The kernel is stored; a tree that cannot be kept costs the next build time, never this one.
  await trees.keep(buildDir, compiled.reuseKey, config).catch(() => rm(buildDir, { recursive: true, force: true }));
  const reused = compiled.reusedTree
    ? `, from the kept tree of ${compiled.reusedTree.configHash.slice(0, 12)}, ${compiled.reusedTree.distance} options away (copied in ${compiled.reusedTree.copySeconds.toFixed(1)} s), ${compiled.compiles} files compiled`
    : compiled.failedReuse
      ? `, clean after the build from a kept tree failed (${compiled.failedReuse}; that tree is dropped)`
      : "";
  const cached = compiled.compilerCache ? `, ${compiled.compilerCache.hits}/${compiled.compilerCache.compiles} compiles from ccache` : "";
  progress.done(`kernel ${configHash.slice(0, 12)} built in ${Math.round(compiled.seconds)} s${reused}${cached}: ${info.options} options, ${(info.vmlinuxBytes / 1e6).toFixed(1)} MB`);
  return info;
}

async function expectedSteps(): Promise<number> {
  const previous = (await listKernels()).map((k) => k.buildSteps).filter((n) => n > 0);
  return previous.length ? Math.max(...previous) : DEFAULT_EXPECTED_STEPS;
}
