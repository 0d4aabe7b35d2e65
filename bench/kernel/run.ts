/**
 * What a new capability set's kernel costs to build: a clean build of the second set, against the
 * same set built through ccache after a first set filled the cache, and whether both give the same
 * bytes. Each build runs in a work dir of its own; the ccache is a fresh one of the bench's own, so
 * neither Pith's kernel cache nor its ccache changes.
 *
 *   npx tsx bench/kernel/run.ts [--first base,network] [--second base,network,node-runtime,runtime-disk]
 *
 * Target: the second set builds in under 90 s on 2 cores, with the clean build's bytes.
 */
import { createHash } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
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
if (!existsSync("/usr/bin/ccache")) throw new Error("bench/kernel needs ccache: apt-get install ccache (scripts/setup.sh does)");
const first = parseFragmentNames(flags.first);
const second = parseFragmentNames(flags.second);

// Work dirs sit where Pith's own builds do: ccache compares paths relative to that parent.
const buildRoot = join(kernelCacheDir(), "build");
await ensurePrivateDir(buildRoot);
const scratch = await mkdtemp(join(buildRoot, "bench-"));
cleanupOnExit(() => rmSync(scratch, { recursive: true, force: true }), "removing the bench's build trees", (l) => process.stderr.write(`${l}\n`));
const ccacheDir = join(scratch, "ccache");

interface Build {
  label: string;
  seconds: number;
  sha256: string;
  bytes: number;
  hits?: string;
}

async function build(source: LinuxSource, label: string, fragments: FragmentName[], compilerCache: false | string): Promise<Build> {
  const workDir = await mkdtemp(join(scratch, "tree-"));
  try {
    process.stderr.write(`bench/kernel: ${label} (${fragments.join("+")}), load ${loadavg()[0]!.toFixed(1)}\n`);
    const started = Date.now();
    await makeConfig(source, workDir, fragments);
    const compiled = await compileKernel(source, workDir, { compilerCache });
    const bytes = await readFile(compiled.vmlinux);
    const result: Build = {
      label,
      seconds: (Date.now() - started) / 1000,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      bytes: bytes.length,
      ...(compiled.compilerCache ? { hits: `${compiled.compilerCache.hits}/${compiled.compilerCache.compiles}` } : {}),
    };
    process.stderr.write(`bench/kernel:   ${result.seconds.toFixed(1)} s${result.hits ? `, ${result.hits} compiles from ccache` : ""}\n`);
    return result;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

const source = await ensureLinuxSource();
const filling = await build(source, "first set, through an empty ccache", first, ccacheDir);
const reused = await build(source, "second set, through the ccache the first set filled", second, ccacheDir);
const clean = await build(source, "clean build of the second set, no ccache", second, false);

const rows = [clean, filling, reused].map((b) => `| ${b.label} | ${b.seconds.toFixed(1)} s | ${b.hits ?? "-"} | ${b.sha256.slice(0, 16)} | ${b.bytes} |`);
process.stdout.write(
  [
    `kernel builds, ${source.version}, second set ${second.join("+")} after ${first.join("+")}`,
    "| build | time | compiles from ccache | sha256 (stripped vmlinux) | bytes |",
    "|---|---|---|---|---|",
    ...rows,
    `second set through ccache: ${reused.seconds.toFixed(1)} s, ${(clean.seconds / reused.seconds).toFixed(2)}x faster than clean (target < 90 s: ${reused.seconds < 90 ? "PASS" : "MISS"})`,
    `same bytes as the clean build: ${reused.sha256 === clean.sha256 ? "yes" : "NO"}`,
    "",
  ].join("\n"),
);
if (reused.sha256 !== clean.sha256) process.exitCode = 1;
