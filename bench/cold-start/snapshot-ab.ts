/**
 * One host-side snapshot change alone: the same image restored by two QemuHypervisor settings,
 * each from a snapshot its own setting made (in a snapshot store of its own), alternating, N times:
 *
 *   npx tsx bench/cold-start/snapshot-ab.ts [--compare rehearsal|rehearsals|warmup] [--runs 6] [--snapshots 3] [--app examples/hello-ts]
 *
 * rehearsal: before, snapshot sources saved as they are (`restoreRehearsals: 0`); after,
 * today's default, the source rehearses the restore handshake before it is saved
 * (QemuMachine.rehearseRestore, three times). rehearsals: one rehearsal against today's three. warmup: 8 warm-up GETs before the save (the default) against 32.
 *
 * Per restore, from this process's clock: start() -> `cont` (restoreMs: jail, pith-net, QEMU
 * start, loading), `cont` -> ready, ready -> the first byte of a GET on the forwarded port, and
 * the whole start() -> first byte; and the CPU time QEMU's threads spent from `cont` to that first
 * byte (/proc schedstat), which a loaded host inflates far less than wall time. The host's load is
 * printed with every run. Every machine is stopped and the temp dir removed at the end or on
 * failure. Skips when QEMU is missing.
 */
import { BenchMachines } from "./bench-machines.ts";
import { mkdirSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { MachineStarter } from "../../src/snapshot/machine-starter.ts";
import { SnapshotStore } from "../../src/snapshot/snapshot-store.ts";
import { missingForMachines } from "../../test/support/machines.ts";
import { median, withTimeout } from "../control-plane/stats.ts";
import { processCpuMs } from "../bench-process.ts";
import { timedGet } from "./first-byte.ts";

const { values: flags } = parseArgs({ options: { runs: { type: "string", default: "6" }, app: { type: "string", default: "examples/hello-ts" }, compare: { type: "string", default: "rehearsal" }, snapshots: { type: "string", default: "3" } } });
const RUNS = Number(flags.runs);
/** Snapshots per variant, restored in turn: one snapshot's saved state varies (what the guest was doing), so one alone is a sample of one. */
const SNAPSHOTS = Number(flags.snapshots);
if (!Number.isInteger(RUNS) || RUNS < 1 || !Number.isInteger(SNAPSHOTS) || SNAPSHOTS < 1) {
  process.stderr.write(`--runs and --snapshots must be whole numbers >= 1, got ${flags.runs} and ${flags.snapshots}\n`);
  process.exit(2);
}
process.env.PITH_ACCEL = "tcg";
/** The warm-up comparison's after: this many GETs before the save instead of the default. */
const WARM_UP_REQUESTS_AFTER = 32;

type Variant = "before" | "after";
interface Setting { hypervisor: ConstructorParameters<typeof QemuHypervisor>[0]; warmUpRequests?: number }
/** What each comparison sets in its before and after; everything else is today's default. */
const COMPARISONS: Record<string, Record<Variant, Setting>> = {
  rehearsal: { before: { hypervisor: { owner: "bench", restoreRehearsals: 0 } }, after: { hypervisor: { owner: "bench" } } },
  rehearsals: { before: { hypervisor: { owner: "bench", restoreRehearsals: 1 } }, after: { hypervisor: { owner: "bench" } } },
  warmup: { before: { hypervisor: { owner: "bench" } }, after: { hypervisor: { owner: "bench" }, warmUpRequests: WARM_UP_REQUESTS_AFTER } },
};
const chosen = COMPARISONS[flags.compare!];
if (!chosen) {
  process.stderr.write(`--compare must be one of ${Object.keys(COMPARISONS).join(", ")}, got ${flags.compare}\n`);
  process.exit(2);
}
const VARIANTS: Record<Variant, Setting> = chosen;

interface Sample { restoreMs: number; contToReady: number; readyToByte: number; startToByte: number; qemuCpu: number; load: number }

async function main(): Promise<void> {
  const missing = missingForMachines();
  if (missing) return void process.stderr.write(`bench/cold-start/snapshot-ab: skipped: ${missing}\n`);
  const image = await buildImage(await loadAppManifest(join(pithRoot(), flags.app!)));
  const files = await bootFiles(image);
  const machines = new BenchMachines("pith-snapshot-ab-");
  const work = machines.work;
  const samples: Record<Variant, Sample[]> = { before: [], after: [] };
  try {
    const starters: Record<Variant, MachineStarter[]> = { before: [], after: [] };
    for (let k = 0; k < SNAPSHOTS; k++) {
      for (const variant of Object.keys(VARIANTS) as Variant[]) {
        const storeDir = join(work, `store-${variant}-${k}`);
        mkdirSync(storeDir);
        const setting = VARIANTS[variant];
        const starter = new MachineStarter({
          hypervisor: new QemuHypervisor(setting.hypervisor),
          store: new SnapshotStore(storeDir),
          scratchDir: join(work, `sources-${variant}-${k}`),
          ...(setting.warmUpRequests !== undefined ? { warmUpRequests: setting.warmUpRequests } : {}),
        });
        starters[variant].push(starter);
        const snapshot = await starter.prepare({ id: `ab-${variant}-${k}`, image: image.record, ...files, stateDir: join(work, `prepare-${variant}-${k}`) });
        process.stderr.write(`${variant} #${k + 1}: snapshot ${(snapshot.record.bytes / 1048576).toFixed(1)} MiB\n`);
      }
    }
    for (let i = 0; i < RUNS; i++) {
      for (const variant of (i % 2 === 0 ? ["before", "after"] : ["after", "before"]) as Variant[]) {
        const stateDir = join(work, `${variant}-${i}`);
        const t0 = performance.now();
        const machine = await withTimeout(starters[variant][i % SNAPSHOTS]!.start({ id: `ab-${variant}-${i}`, image: image.record, ...files, stateDir }, "snapshot"), 120_000, "start");
        machines.started(machine);
        try {
          const cpuAtCont = processCpuMs(machine.pid);
          const timings = await withTimeout(machine.whenReady(), 120_000, "ready");
          const response = await timedGet({ port: machine.ports[0]!.hostPort, host: "ab.test", timeoutMs: 30_000 });
          const restoreMs = timings.restoreMs ?? Number.NaN;
          const readyMs = timings.readyMs ?? Number.NaN;
          const sample: Sample = {
            restoreMs,
            contToReady: readyMs - restoreMs,
            readyToByte: response.firstByteAt - t0 - readyMs,
            startToByte: response.firstByteAt - t0,
            qemuCpu: processCpuMs(machine.pid) - cpuAtCont,
            load: loadavg()[0]!,
          };
          samples[variant].push(sample);
          process.stderr.write(`run ${i + 1} ${variant} (snapshot #${(i % SNAPSHOTS) + 1}): restore ${Math.round(restoreMs)} ms, cont->ready ${Math.round(sample.contToReady)} ms, ready->first byte ${Math.round(sample.readyToByte)} ms, start->first byte ${Math.round(sample.startToByte)} ms, QEMU CPU cont->first byte ${Math.round(sample.qemuCpu)} ms (load ${sample.load.toFixed(1)})\n`);
        } finally {
          await machines.done(machine, stateDir);
        }
      }
    }
  } finally {
    await machines.close();
  }
  for (const variant of Object.keys(samples) as Variant[]) {
    const of = samples[variant];
    const m = (key: keyof Sample): string => `${Math.round(median(of.map((s) => s[key])))}`;
    process.stdout.write(`${variant}: medians of ${of.length}: restore ${m("restoreMs")} ms, cont->ready ${m("contToReady")} ms, ready->first byte ${m("readyToByte")} ms, start->first byte ${m("startToByte")} ms (${of.map((s) => Math.round(s.startToByte)).join(" ")}), QEMU CPU cont->first byte ${m("qemuCpu")} ms, load ${of.map((s) => s.load.toFixed(1)).join(" ")}\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/cold-start/snapshot-ab failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
