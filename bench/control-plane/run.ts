/**
 * Control-plane benchmark: how fast declared services become running machines, how quickly
 * watchers hear of a change, and what the control plane adds to a real machine's boot.
 *
 *   npx tsx bench/control-plane/run.ts [--quick] [--profile] [--json] [--only apply,watch,qemu] [--sizes 1,100,1000]
 *
 * 1. apply:  control plane + one NodeAgent (FakeHypervisor, bootMs 0) in this process, the agent
 *            talking HTTP to the API through a PithClient; a Service of N replicas, timed from
 *            create() until its status.ready === N (fresh control plane per N).
 * 2. watch:  10 PithClient watchers on Service; a writer updates spec.env.T = performance.now()
 *            300 times; each watcher records now - T on receipt.
 * 3. qemu:   control plane + NodeAgent with QemuHypervisor (TCG), examples/static-c, replicas 1;
 *            T_total (create() -> machine phase "ready" seen by a watch) against the machine's own
 *            boot-to-ready (status.timings.readyMs). Target: overhead under 5%.
 *
 * One file per benchmark (apply.ts, watch.ts, qemu.ts), their shared cluster helpers in
 * cluster.ts. Every part bounds its duration; control planes are closed, agents stopped, and every QEMU this
 * benchmark started is stopped, also on errors and Ctrl-C. See bench/README.md.
 */
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { applyOnce, APPLY_WARMUP_N, formatApply, type ApplyResult } from "./apply.ts";
import { cleanupSync, log } from "./cluster.ts";
import { formatQemu, qemuOverhead, type QemuResult } from "./qemu.ts";
import { ms } from "./stats.ts";
import { formatWatch, watchLatency, type WatchResult } from "./watch.ts";
import { cleanupOnExit } from "../bench-process.ts";

// ---- options ----

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    only: { type: "string", default: "apply,watch,qemu" },
    sizes: { type: "string", default: "1,100,1000" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  process.stdout.write(
    "usage: npx tsx bench/control-plane/run.ts [--quick (3 QEMU runs, not 5)] [--profile (CPU profile of the largest apply)] [--json] [--only apply,watch,qemu] [--sizes 1,100,1000]\n",
  );
  process.exit(0);
}
const parts = new Set(flags.only.split(",").map((s) => s.trim()));
const sizes = flags.sizes.split(",").map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 1)) fatal(`--sizes must be whole numbers >= 1, got ${flags.sizes}`);

const QEMU_RUNS = flags.quick ? 3 : 5;
/** The whole benchmark, whatever happens. */
const TOTAL_LIMIT_MS = (flags.quick ? 20 : 30) * 60_000;

function fatal(message: string): never {
  log(`bench/control-plane: ${message}`);
  process.exit(2);
}

cleanupOnExit(cleanupSync, `stopping the benchmark's machines and removing its files`, log);
const watchdog = setTimeout(() => {
  log(`bench/control-plane: the whole benchmark took over ${TOTAL_LIMIT_MS / 60_000} min: giving up`);
  cleanupSync();
  process.exit(3);
}, TOTAL_LIMIT_MS);
watchdog.unref();

// ---- main ----

async function main(): Promise<number> {
  const started = new Date();
  log(`bench/control-plane: ${started.toISOString()}, ${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(1)).join(" ")}${flags.quick ? ", --quick" : ""}`);
  const report: { apply?: ApplyResult[]; watch?: WatchResult; qemu?: QemuResult; errors: string[] } = { errors: [] };
  const sections: string[] = [];

  if (parts.has("apply")) {
    report.apply = [];
    // The first control plane in a process pays for JIT and first-use costs (N=1: ~250 ms cold
    // against ~50 ms warm): one unmeasured run first.
    log(`apply: warm-up, N=${APPLY_WARMUP_N}, not measured`);
    await applyOnce(APPLY_WARMUP_N, false).catch((e: Error) => log(`apply warm-up failed: ${e.message}`));
    for (const n of sizes) {
      log(`apply: N=${n}`);
      try {
        const r = await applyOnce(n, flags.profile && n === Math.max(...sizes));
        report.apply.push(r);
        log(`apply: N=${n}: ${r.readyMs !== undefined ? ms(r.readyMs) : r.error}`);
      } catch (e) {
        report.errors.push((e as Error).message);
        log((e as Error).message);
      }
    }
    sections.push(formatApply(report.apply));
  }
  if (parts.has("watch")) {
    log("watch: latency");
    try {
      report.watch = await watchLatency();
      sections.push(formatWatch(report.watch));
    } catch (e) {
      report.errors.push((e as Error).message);
      log((e as Error).message);
    }
  }
  if (parts.has("qemu")) {
    log("qemu: control-plane overhead");
    try {
      report.qemu = await qemuOverhead(QEMU_RUNS);
      sections.push(formatQemu(report.qemu));
    } catch (e) {
      report.errors.push((e as Error).message);
      log((e as Error).message);
    }
  }

  const header = `control-plane benchmark, ${started.toISOString()}, ${cpus().length} cores, load now ${loadavg().map((l) => l.toFixed(1)).join(" ")}`;
  process.stdout.write(`\n${header}\n\n${sections.join("\n\n")}\n`);
  if (report.errors.length > 0) process.stdout.write(`\nerrors:\n${report.errors.join("\n")}\n`);
  if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  return report.errors.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    cleanupSync();
    process.exit(code);
  },
  (e: Error) => {
    log(`bench/control-plane: ${e.stack ?? e.message}`);
    cleanupSync();
    process.exit(1);
  },
);
