/**
 * What a new capability set's kernel costs to build: the second set built clean, against the same
 * set built from a copy of the first set's kept build tree (Kbuild recompiling only the objects
 * whose CONFIG_ symbols changed), and whether both give the same bytes. Every build runs without
 * ccache in a work dir of its own, and the kept trees live in the bench's own scratch dir, so
 * neither Pith's kernel cache, its kept trees nor its ccache changes.
 *
 *   npx tsx bench/kernel/run.ts [--first base,network] [--second base,network,node-runtime,runtime-disk]
 *
 * Target: the second set builds in under 90 s on 2 cores, with the clean build's bytes.
 */
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { KeptBuildTrees } from "../../src/kernel/kept-build-trees.ts";
import { compileKernel, makeConfig } from "../../src/kernel/kernel-builder.ts";
import { parseFragmentNames, type FragmentName } from "../../src/kernel/kernel-fragments.ts";
import { ensureLinuxSource, type LinuxSource } from "../../src/kernel/linux-source.ts";
import { kernelCacheDir } from "../../src/shared/paths.ts";
import { ensurePrivateDir } from "../../src/shared/private-files.ts";
import { cleanupOnExit } from "../bench-process.ts";

const { values: flags } = parseArgs({
  options: {
    first: { type: "string", default: "base,network" },
    second: { type: "string", default: "base,network,node-runtime,runtime-disk" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  process.stdout.write("usage: npx tsx bench/kernel/run.ts [--first base,network] [--second base,network,node-runtime,runtime-disk]\n");
  process.exit(0);
}
const first = parseFragmentNames(flags.first);
const second = parseFragmentNames(flags.second);

// Kept trees move into place by rename: scratch sits on the filesystem of Pith's own build dirs.
const buildRoot = join(kernelCacheDir(), "build");
await ensurePrivateDir(buildRoot);
const scratch = await mkdtemp(join(buildRoot, "bench-"));
cleanupOnExit(() => rmSync(scratch, { recursive: true, force: true }), "removing the bench's build trees", (l) => process.stderr.write(`${l}\n`));
const trees = new KeptBuildTrees(join(scratch, "trees"), { maxTrees: 1, maxBytes: 2 ** 40 });

interface Build {
  label: string;
  seconds: number;
  /** CPU seconds (user + system) of make and everything it ran: less disturbed by load than the wall clock. */
  cpuSeconds: number;
  steps: number;
  /** Files compiled (CC, AS). */
  compiles: number;
  /** Host load (1 min) when the build started and ended. */
  load: [number, number];
  /** Of the stripped vmlinux Pith boots, and of the whole vmlinux (symbols included). */
  stripped: { sha256: string; bytes: number };
  whole: { sha256: string; bytes: number };
  reused?: string;
}

const digest = async (path: string) => {
  const bytes = await readFile(path);
  return { sha256: createHash("sha256").update(bytes).digest("hex"), bytes: bytes.length };
};
const load = () => Number(loadavg()[0]!.toFixed(1));

/** CPU seconds of this process's waited-for children (utime + stime of /proc/self/stat's cutime, cstime). */
async function childrenCpuSeconds(): Promise<number> {
  const fields = (await readFile("/proc/self/stat", "utf8")).replace(/^.*\) /, "").split(" ");
  // After "pid (comm) ", cutime and cstime are the 14th and 15th fields, in clock ticks (100 per second on Linux).
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/** Every build compiles at this one path, as Pith's do: the kernel's host tools record it in their dependencies. */
const buildDir = join(scratch, "tree");

async function build(source: LinuxSource, label: string, fragments: FragmentName[], how: "clean" | "clean, kept" | "from the kept tree"): Promise<Build> {
  const configDir = await mkdtemp(join(scratch, "config-"));
  try {
    const startLoad = load();
    process.stderr.write(`bench/kernel: ${label} (${fragments.join("+")}), load ${startLoad}\n`);
    const started = Date.now();
    const startedCpu = await childrenCpuSeconds();
    const config = await makeConfig(source, configDir, fragments);
    const compiled = await compileKernel(source, buildDir, config, { compilerCache: false, ...(how === "from the kept tree" ? { trees } : {}) });
    if (how === "from the kept tree" && !compiled.reusedTree) throw new Error("the first set's kept tree was not reused");
    const result: Build = {
      label,
      seconds: (Date.now() - started) / 1000,
      cpuSeconds: (await childrenCpuSeconds()) - startedCpu,
      steps: compiled.steps,
      compiles: compiled.compiles,
      load: [startLoad, load()],
      stripped: await digest(compiled.vmlinux),
      whole: await digest(join(buildDir, "vmlinux")),
      ...(compiled.reusedTree
        ? { reused: `${compiled.reusedTree.distance} options apart, ${(compiled.reusedTree.bytes / 2 ** 20).toFixed(0)} MiB copied in ${compiled.reusedTree.copySeconds.toFixed(1)} s` }
        : {}),
    };
    if (how === "clean, kept") await trees.keep(buildDir, compiled.reuseKey, config);
    process.stderr.write(
      `bench/kernel:   ${result.seconds.toFixed(1)} s (${result.cpuSeconds.toFixed(0)} s CPU), ${result.steps} steps, ${result.compiles} compiles${result.reused ? `, ${result.reused}` : ""}, stripped vmlinux sha256 ${result.stripped.sha256}, load ${load()}\n`,
    );
    return result;
  } finally {
    await rm(configDir, { recursive: true, force: true });
    await rm(buildDir, { recursive: true, force: true });
  }
}

const source = await ensureLinuxSource();
const firstBuild = await build(source, "first set, clean, its tree kept", first, "clean, kept");
const reused = await build(source, "second set, from the first set's kept tree", second, "from the kept tree");
const clean = await build(source, "second set, clean", second, "clean");

const row = (b: Build) =>
  `| ${b.label} | ${b.seconds.toFixed(1)} s | ${b.cpuSeconds.toFixed(0)} s | ${b.compiles} (${b.steps}) | ${b.load[0]}-${b.load[1]} | ${b.reused ?? "-"} | ${b.stripped.sha256.slice(0, 16)} (${b.stripped.bytes}) | ${b.whole.sha256.slice(0, 16)} (${b.whole.bytes}) |`;
const sameStripped = reused.stripped.sha256 === clean.stripped.sha256;
const sameWhole = reused.whole.sha256 === clean.whole.sha256;
process.stdout.write(
  [
    `kernel builds, ${source.version}, second set ${second.join("+")} after ${first.join("+")}, ${cpus().length} cores, ${new Date().toISOString()}`,
    "| build | time | CPU | files compiled (make steps) | load (start-end) | reused tree | sha256 stripped vmlinux (bytes) | sha256 whole vmlinux (bytes) |",
    "|---|---|---|---|---|---|---|---|",
    ...[firstBuild, reused, clean].map(row),
    "",
    "| second set | clean | from the kept tree | clean / kept tree |",
    "|---|---|---|---|",
    `| wall time | ${clean.seconds.toFixed(1)} s | ${reused.seconds.toFixed(1)} s | ${(clean.seconds / reused.seconds).toFixed(1)}x |`,
    `| CPU time | ${clean.cpuSeconds.toFixed(0)} s | ${reused.cpuSeconds.toFixed(0)} s | ${(clean.cpuSeconds / reused.cpuSeconds).toFixed(1)}x |`,
    `| files compiled | ${clean.compiles} | ${reused.compiles} | ${(clean.compiles / Math.max(1, reused.compiles)).toFixed(1)}x |`,
    `| stripped vmlinux sha256 | ${clean.stripped.sha256.slice(0, 16)} | ${reused.stripped.sha256.slice(0, 16)} | ${sameStripped ? "same" : "DIFFERENT"} |`,
    `second set from the kept tree: ${reused.seconds.toFixed(1)} s (target < 90 s on 2 cores: ${reused.seconds < 90 ? "PASS" : "MISS"}${cpus().length > 2 ? `; ${cpus().length} cores here` : ""})`,
    `same bytes as the clean build: stripped vmlinux ${sameStripped ? "yes" : "NO"}, whole vmlinux ${sameWhole ? "yes" : "NO"}`,
    "",
  ].join("\n"),
);
if (!sameStripped || !sameWhole) process.exitCode = 1;
