/**
 * One guest-library change alone: hello-ts built against another Pith checkout's guest library
 * (A, e.g. main's) and against this one's (B), each restored from its own snapshot by this
 * checkout's MachineStarter, alternating A and B, N times:
 *
 *   npx tsx bench/cold-start/guest-ab.ts --other /work/main [--runs 5]
 *
 * Measured per restore: start() called -> ready (the machine's readyMs: QEMU start, load, the
 * guest's restore handshake), and -> the first byte of a GET on its forwarded port. The host side
 * is the same code for both, so the difference is the guest library's. Its own account
 * (`pith-guest: restored in ...`, only from a library that prints it) is shown too. Every machine
 * is stopped and the temp dir removed at the end or on failure. Skips when QEMU is missing.
 */
import { BenchMachines } from "./bench-machines.ts";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles, type StoredImage } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { MachineStarter } from "../../src/snapshot/machine-starter.ts";
import { missingForMachines } from "../../test/support/machines.ts";
import { median, withTimeout } from "../control-plane/stats.ts";
import { readFileOrEmpty } from "../bench-process.ts";
import { timedGet } from "./first-byte.ts";

const { values: flags } = parseArgs({ options: { other: { type: "string" }, runs: { type: "string", default: "5" } } });
if (!flags.other) {
  process.stderr.write("usage: npx tsx bench/cold-start/guest-ab.ts --other PITH_CHECKOUT [--runs N]\n");
  process.exit(2);
}
const RUNS = Number(flags.runs);
process.env.PITH_ACCEL = "tcg";
const APP = "examples/hello-ts";

async function main(): Promise<void> {
  const missing = missingForMachines();
  if (missing) return void process.stderr.write(`bench/cold-start/guest-ab: skipped: ${missing}\n`);
  // The other checkout's builder bundles the app with its own guest library (pithRoot is per checkout).
  const other = (await import(join(flags.other!, "src/image/image-builder.ts"))) as { buildImage: typeof buildImage };
  const otherManifest = (await import(join(flags.other!, "src/manifest/app-manifest.ts"))) as { loadAppManifest: typeof loadAppManifest };
  const images: Record<"A" | "B", StoredImage> = {
    A: await other.buildImage(await otherManifest.loadAppManifest(join(flags.other!, APP))),
    B: await buildImage(await loadAppManifest(join(pithRoot(), APP))),
  };
  const machines = new BenchMachines("pith-guest-ab-");
  const work = machines.work;
  const hypervisor = new QemuHypervisor({ owner: "bench" });
  const starter = new MachineStarter({ hypervisor, scratchDir: join(work, "sources") });
  const samples: { variant: string; readyMs: number; firstByteMs: number; guest?: number; load: number }[] = [];
  try {
    for (const [variant, image] of Object.entries(images)) {
      await starter.prepare({ id: `ab-${variant}`, image: image.record, ...(await bootFiles(image)), stateDir: join(work, `ab-${variant}`) });
      process.stderr.write(`${variant}: ${image.record.digest.slice(0, 19)} snapshot ready\n`);
    }
    for (let i = 0; i < RUNS; i++) {
      for (const variant of (i % 2 === 0 ? ["A", "B"] : ["B", "A"]) as ("A" | "B")[]) {
        const image = images[variant];
        const stateDir = join(work, `${variant}-${i}`);
        const t0 = performance.now();
        const machine = await withTimeout(starter.start({ id: `ab-${variant}-${i}`, image: image.record, ...(await bootFiles(image)), stateDir }, "snapshot"), 120_000, "start");
        machines.started(machine);
        try {
          const timings = await withTimeout(machine.whenReady(), 120_000, "ready");
          const response = await timedGet({ port: machine.ports[0]!.hostPort, host: "ab.test", timeoutMs: 30_000 });
          const guest = /pith-guest: restored in ([\d.]+) ms/.exec(readFileOrEmpty(machine.consoleLog));
          const sample = { variant, readyMs: timings.readyMs ?? Number.NaN, firstByteMs: response.firstByteAt - t0, ...(guest ? { guest: Number(guest[1]) } : {}), load: loadavg()[0]! };
          samples.push(sample);
          process.stderr.write(`run ${i + 1} ${variant}: ready ${Math.round(sample.readyMs)} ms, first byte ${Math.round(sample.firstByteMs)} ms${guest ? `, guest restore ${guest[1]} ms` : ""} (load ${sample.load.toFixed(1)})\n`);
        } finally {
          await machines.done(machine, stateDir);
        }
      }
    }
  } finally {
    await machines.close();
  }
  for (const variant of ["A", "B"]) {
    const of = samples.filter((s) => s.variant === variant);
    process.stdout.write(`${variant}: readyMs median ${Math.round(median(of.map((s) => s.readyMs)))} ms, first byte median ${Math.round(median(of.map((s) => s.firstByteMs)))} ms (${of.map((s) => Math.round(s.firstByteMs)).join(" ")})\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/cold-start/guest-ab failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
