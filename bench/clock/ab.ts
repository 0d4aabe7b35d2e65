/**
 * The machine clock fix, before against after, paired: two Pith checkouts take turns starting
 * machines (bench/clock/machine-start.ts), so both see the same host load:
 *
 *   npx tsx bench/clock/ab.ts --before /work/main [--after .] [--runs 5] [--app examples/hello-ts]
 *
 * Prints, per checkout, the median boot-to-ready of the app and of a static-c restore from a
 * snapshot (start() -> ready), with the CPU time QEMU spent on each, and the host's load beside
 * every run. Each run cleans up its machines and temp dir, failed or not.
 */
import { execFileSync } from "node:child_process";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { median } from "../control-plane/stats.ts";

const { values: flags } = parseArgs({ options: { before: { type: "string" }, after: { type: "string", default: "." }, runs: { type: "string", default: "5" }, app: { type: "string", default: "examples/hello-ts" } } });
const RUNS = Number(flags.runs);
if (!flags.before || !Number.isInteger(RUNS) || RUNS < 1) {
  process.stderr.write("usage: bench/clock/ab.ts --before CHECKOUT [--after CHECKOUT] [--runs N>=1] [--app DIR]\n");
  process.exit(2);
}
const checkouts = { before: resolve(flags.before), after: resolve(flags.after) };
type Run = { bootReadyMs: number; bootKernelMs: number; bootCpuMs: number; restoreReadyMs: number; restoreCpuMs: number };
const runs: Record<keyof typeof checkouts, Run[]> = { before: [], after: [] };
const child = join(import.meta.dirname, "machine-start.ts");

for (let i = 0; i < RUNS; i++) {
  // Alternate who goes first, so neither always follows the other's page cache or load.
  for (const name of (i % 2 === 0 ? ["before", "after"] : ["after", "before"]) as (keyof typeof checkouts)[]) {
    const load = loadavg()[0]!.toFixed(1);
    const out = execFileSync(process.execPath, ["--import", "tsx", child, checkouts[name], flags.app!], { encoding: "utf8", timeout: 600_000, stdio: ["ignore", "pipe", "inherit"] });
    const run = JSON.parse(out.trim().split("\n").pop()!) as Run;
    runs[name].push(run);
    process.stdout.write(`run ${i + 1} ${name.padEnd(6)} load ${load}: boot ${run.bootReadyMs.toFixed(0)} ms (kernel ${run.bootKernelMs.toFixed(0)}, QEMU CPU ${run.bootCpuMs.toFixed(0)} ms), restore ${run.restoreReadyMs.toFixed(0)} ms (CPU ${run.restoreCpuMs.toFixed(0)} ms)\n`);
  }
}
for (const name of ["before", "after"] as const) {
  const r = runs[name];
  process.stdout.write(`${name.padEnd(6)} median of ${RUNS}: boot ${median(r.map((x) => x.bootReadyMs)).toFixed(0)} ms (kernel ${median(r.map((x) => x.bootKernelMs)).toFixed(0)}, CPU ${median(r.map((x) => x.bootCpuMs)).toFixed(0)}), restore ${median(r.map((x) => x.restoreReadyMs)).toFixed(0)} ms (CPU ${median(r.map((x) => x.restoreCpuMs)).toFixed(0)})\n`);
}
