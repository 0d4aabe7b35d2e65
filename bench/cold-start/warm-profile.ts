/**
 * Where a warm-pool claim's time goes, without the control plane, the agent or the proxy:
 *
 *   npx tsx bench/cold-start/warm-profile.ts [--runs 7] [--app examples/hello-ts] [--warm-up N] [--tcg-stats]
 *
 * A WarmPool of one machine of the app (restored from its snapshot, warmed up, paused, as the
 * agent keeps it); each run claims it (as the agent does for a new Machine), then sends one GET
 * to its forwarded port once it is ready. The pool refills between runs and the next run waits
 * for it. Stamps, all from this process's clock: claim() called, claim() resolved (the config
 * lines queued and QMP `cont` answered), the guest library's console line (`pith-guest:
 * restored in`, stamped when the console file shows it), ready received, the GET's first byte;
 * and the CPU time QEMU's threads ran from the claim to the first byte (/proc schedstat); and a
 * second GET's, for the app's steady answer. `--warm-up N` sets the pool's warm-up requests (8);
 * `--tcg-stats` counts the translation blocks QEMU made from the claim to ready and to the first
 * byte (HMP `info jit` over QMP after each: code the guest ran for the first time in this QEMU).
 *
 * Every machine is stopped and the temp dir removed at the end or on failure. Skips when QEMU is
 * missing. Report the host's load (printed per run) beside the figures.
 */
import { BenchMachines } from "./bench-machines.ts";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { MachineStarter } from "../../src/snapshot/machine-starter.ts";
import { WarmPool } from "../../src/snapshot/warm-pool.ts";
import { missingForMachines } from "../../test/support/machines.ts";
import { median, waitUntil, withTimeout } from "../control-plane/stats.ts";
import { processCpuMs, readFileOrEmpty } from "../bench-process.ts";
import { timedGet } from "./first-byte.ts";
import { QmpClient } from "../../src/hypervisor/qemu/qmp-client.ts";

const { values: flags } = parseArgs({
  options: {
    runs: { type: "string", default: "7" },
    app: { type: "string", default: "examples/hello-ts" },
    "warm-up": { type: "string" },
    "tcg-stats": { type: "boolean", default: false },
  },
});
const RUNS = Number(flags.runs);
const WARM_UP = flags["warm-up"] === undefined ? undefined : Number(flags["warm-up"]);
if (!Number.isInteger(RUNS) || RUNS < 1 || (WARM_UP !== undefined && (!Number.isInteger(WARM_UP) || WARM_UP < 0))) {
  process.stderr.write(`--runs must be a whole number >= 1 and --warm-up one >= 0, got ${flags.runs} and ${flags["warm-up"]}\n`);
  process.exit(2);
}
process.env.PITH_ACCEL = "tcg";

async function main(): Promise<void> {
  const missing = missingForMachines();
  if (missing) return void process.stderr.write(`bench/cold-start/warm-profile: skipped: ${missing}\n`);
  const image = await buildImage(await loadAppManifest(join(pithRoot(), flags.app!)));
  const machines = new BenchMachines("pith-warm-profile-");
  const hypervisor = new QemuHypervisor({ owner: "bench" });
  const starter = new MachineStarter({ hypervisor, scratchDir: join(machines.work, "sources") });
  const pool = new WarmPool({ ...(WARM_UP !== undefined ? { warmUpRequests: WARM_UP } : {}), hypervisor, starter, stateDirFor: (id) => join(machines.work, id), log: (m) => process.stderr.write(`${m}\n`) });
  const files = await bootFiles(image);
  const spec = { image: image.record, ...files };
  const rows: Record<string, number>[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      pool.want("profile", { spec, count: 1 });
      await waitUntil(() => (pool.counts().profile === 1 ? true : undefined), 180_000, "a warm machine", 20);
      const before = performance.now();
      const machine = await pool.take("profile", { id: `claimed-${i}`, image: image.record });
      if (!machine) throw new Error("the pool had no machine to claim");
      const claimed = performance.now();
      machines.started(machine);
      const qmpPath = (machine as unknown as { options: { qmpSocket: string } }).options.qmpSocket;
      const tbs = async (): Promise<number> => {
        const q = await QmpClient.connect(qmpPath, 5000);
        try {
          return Number(/TB count\s+(\d+)/.exec(String(await q.execute("human-monitor-command", { "command-line": "info jit" })))![1]);
        } finally {
          q.close();
        }
      };
      const tbAtClaim = flags["tcg-stats"] ? await tbs() : 0;
      const cpuAtClaim = processCpuMs(machine.pid);
      let guestLineAt = Number.NaN;
      const consoleAtClaim = readFileOrEmpty(machine.consoleLog).length;
      const watch = setInterval(() => {
        if (Number.isNaN(guestLineAt) && readFileOrEmpty(machine.consoleLog).slice(consoleAtClaim).includes("pith-guest: restored in")) guestLineAt = performance.now();
      }, 1);
      try {
        const timings = await withTimeout(machine.whenReady(), 30_000, "ready");
        const ready = performance.now();
        const tbAtReady = flags["tcg-stats"] ? await tbs() : 0;
        const response = await timedGet({ port: machine.ports[0]!.hostPort, host: "profile.test", timeoutMs: 30_000 });
        const cpuAtByte = processCpuMs(machine.pid);
        const tbAtByte = flags["tcg-stats"] ? await tbs() : 0;
        const second = await timedGet({ port: machine.ports[0]!.hostPort, host: "profile.test", timeoutMs: 30_000 });
        const guest = /pith-guest: restored in ([\d.]+) ms \(env ([\d.]+) ms, hooks ([\d.]+) ms/.exec(readFileOrEmpty(machine.consoleLog).slice(consoleAtClaim));
        const row = {
          "claim->cont": claimed - before,
          "cont->guest line": guestLineAt - claimed,
          "guest lib": guest ? Number(guest[1]) : Number.NaN,
          "cont->ready": ready - claimed,
          "ready->sent": response.sentAt - ready,
          "sent->byte": response.firstByteMs,
          "claim->byte": response.firstByteAt - before,
          "2nd sent->byte": second.firstByteMs,
          "qemu cpu": cpuAtByte - cpuAtClaim,
          readyMs: timings.readyMs ?? Number.NaN,
          ...(flags["tcg-stats"] ? { "new TBs to ready": tbAtReady - tbAtClaim, "new TBs to byte": tbAtByte - tbAtReady } : {}),
        };
        rows.push(row);
        process.stderr.write(`run ${i + 1}/${RUNS} (load ${loadavg()[0]!.toFixed(1)}): ${Object.entries(row).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}\n`);
      } finally {
        clearInterval(watch);
        await machines.done(machine, join(machines.work, `claimed-${i}`));
      }
    }
  } finally {
    await pool.close();
    await machines.close();
  }
  process.stdout.write(`\nmedians over ${rows.length} claims (ms):\n`);
  for (const key of Object.keys(rows[0] ?? {})) process.stdout.write(`  ${key.padEnd(18)} ${median(rows.map((r) => r[key]!)).toFixed(1)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/cold-start/warm-profile: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
