/**
 * What the jail costs: boot-to-ready of the same images with the jail (own uid, cgroup with
 * limits, private root, namespaces, seccomp) and without it, interleaved run by run under the same
 * QEMU (TCG), so the host's load drifts over both alike.
 *
 *   npx tsx bench/jail/run.ts [--runs N (7)] [--apps static-c,hello-ts]
 *
 * Measured: from start() until the app's readiness (Pith's own readyMs), then one HTTP GET on
 * the forwarded port must answer 200. Target: the jail costs at most 5% (ratio <= 1.05).
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { streamProgress } from "../../src/shared/progress.ts";
import { cleanupOnExit, killProcessGroup } from "../bench-process.ts";

const { values: flags } = parseArgs({
  options: { runs: { type: "string", default: "7" }, apps: { type: "string", default: "static-c,hello-ts" }, help: { type: "boolean", short: "h", default: false } },
});
if (flags.help) {
  process.stdout.write("usage: npx tsx bench/jail/run.ts [--runs N (7)] [--apps static-c,hello-ts]\n");
  process.exit(0);
}
const runs = Number(flags.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a whole number >= 1, got ${flags.runs}`);
if (process.getuid?.() !== 0) process.stderr.write("bench/jail: not root, so the jailed side lacks its uid and cgroups (see the first lines)\n");
process.env.PITH_ACCEL = "tcg";

const running = new Set<number>();
cleanupOnExit(() => running.forEach((pid) => killProcessGroup(pid)), "stopping the machines", (l) => process.stderr.write(`${l}\n`));

const sides = { jailed: new QemuHypervisor({ owner: "bench" }), unconfined: new QemuHypervisor({ owner: "bench", unconfined: true }) };
type Side = keyof typeof sides;
const PHASES = ["vmmMs", "kernelMs", "initMs", "appMs"] as const;
type Phase = (typeof PHASES)[number];
const emptyPhases = (): Record<Phase, number[]> => ({ vmmMs: [], kernelMs: [], initMs: [], appMs: [] });
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const results: string[] = [];
for (const app of flags.apps.split(",")) {
  const dir = join(pithRoot(), "examples", app);
  if (app === "static-c") execFileSync("make", ["-s", "-C", dir]);
  const image = await buildImage(await loadAppManifest(dir), streamProgress(`building ${app}`));
  const files = await bootFiles(image);
  const samples: Record<Side, number[]> = { jailed: [], unconfined: [] };
  const phases: Record<Side, Record<Phase, number[]>> = { jailed: emptyPhases(), unconfined: emptyPhases() };
  // One warm-up of each, not counted: the first boot pages the image in.
  for (let run = -1; run < runs; run++) {
    // Alternate which side goes first, so neither always follows the other.
    const order: Side[] = run % 2 === 0 ? ["jailed", "unconfined"] : ["unconfined", "jailed"];
    for (const side of order) {
      const stateDir = await mkdtemp(join(tmpdir(), "pith-bench-jail-"));
      const machine = await sides[side].start({ id: `${app}-${side}-${run + 1}`, image: image.record, ...files, stateDir });
      running.add(machine.pid);
      try {
        const timings = await machine.whenReady();
        const answer = await fetch(machine.ports[0]!.url, { signal: AbortSignal.timeout(10_000) });
        await answer.text();
        if (answer.status !== 200) throw new Error(`${side} ${app} answered ${answer.status}`);
        if (run >= 0) {
          samples[side].push(timings.readyMs!);
          for (const phase of PHASES) if (timings[phase] !== undefined) phases[side][phase].push(timings[phase]!);
        }
        const split = PHASES.map((phase) => `${phase.replace("Ms", "")} ${timings[phase] ?? "?"}`).join(", ");
        process.stderr.write(`${app} run ${run + 1} ${side}: ${timings.readyMs} ms (${split}; load ${loadavg()[0]!.toFixed(2)})\n`);
      } finally {
        await machine.stop(1000);
        running.delete(machine.pid);
        await rm(stateDir, { recursive: true, force: true });
      }
    }
  }
  const ratio = median(samples.jailed) / median(samples.unconfined);
  // The two boots of a run ran back to back: their ratio cancels most of the host's drift.
  const paired = median(samples.jailed.map((j, i) => j / samples.unconfined[i]!));
  // Where a difference lies: the VMM's start (the jail's setup is there), the kernel, init or the app.
  const phaseLine = PHASES.map((phase) => `${phase.replace("Ms", "")} ${median(phases.jailed[phase]).toFixed(0)}/${median(phases.unconfined[phase]).toFixed(0)}`).join(", ");
  results.push(
    `${app}: medians jailed/unconfined by phase (ms): ${phaseLine}`,
    `${app}: jailed median ${median(samples.jailed).toFixed(0)} ms, unconfined median ${median(samples.unconfined).toFixed(0)} ms, ` +
      `jailed/unconfined ${ratio.toFixed(3)}, paired ${paired.toFixed(3)} (target <= 1.05: ${paired <= 1.05 ? "PASS" : "MISS"}), ${runs} runs each, load ${loadavg()[0]!.toFixed(2)}`,
  );
}
process.stdout.write(`${results.join("\n")}\n`);
