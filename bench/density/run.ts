/**
 * What an idle machine costs the host, and how many fit: for each app and each variant (today's
 * defaults, each density change alone, all together), start idle machines with Pith's
 * QemuHypervisor, jailed as in production, one after another until --count or a bound, then
 * measure each machine's memory (PSS of its QEMU and its pith-net) and idle CPU (utime+stime
 * over a window after all are ready, plus its share of ksmd's where KSM is on), and stop them
 * before the next variant.
 *
 *   npx tsx bench/density/run.ts [--count N (4)] [--apps hello-ts,static-c] [--variants before,tb-32,...]
 *                                [--idle-seconds S (20)] [--reserve-mib M (4096)] [--max-ready-seconds S (90)] [--start-minutes M (30)]
 *                                [--parallel-starts N (1)] [--build-kernels]
 *
 * Bounds: no new machine once the host's MemAvailable is below --reserve-mib, once a machine
 * took longer than --max-ready-seconds to be ready (the host's CPU is saturated), or once the
 * variant has been starting machines for --start-minutes (a run of 100 must fit a time box). Machines per
 * host are extrapolated from the median PSS against MemTotal, and from idle CPU against the cores.
 * KSM, where a variant turns it on, is turned back to what it was at exit, error or Ctrl-C.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import type { Machine } from "../../src/hypervisor/hypervisor.ts";
import { applyKsmSettings, KSM_DENSITY_SETTINGS, ksmAvailable, readKsmStats, type KsmSettings } from "../../src/hypervisor/qemu/ksm.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { inspectProcesses } from "../../src/hypervisor/qemu/qemu-discovery.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles } from "../../src/image/image-store.ts";
import { cachedKernel, ensureKernel } from "../../src/kernel/kernel-builder.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { streamProgress } from "../../src/shared/progress.ts";
import { cleanupOnExit, killProcessGroup } from "../bench-process.ts";
import { CLOCK_TICKS_PER_SECOND, cpuTicks, hostMemoryKiB, kernelThreadPid, pssKiB } from "./host-cost.ts";
import { VARIANTS, type DensityVariant } from "./variants.ts";

const { values: flags } = parseArgs({
  options: {
    count: { type: "string", default: "4" },
    apps: { type: "string", default: "hello-ts,static-c" },
    variants: { type: "string", default: VARIANTS.map((v) => v.name).join(",") },
    "idle-seconds": { type: "string", default: "20" },
    "reserve-mib": { type: "string", default: "4096" },
    "max-ready-seconds": { type: "string", default: "90" },
    "start-minutes": { type: "string", default: "30" },
    "parallel-starts": { type: "string", default: "1" },
    "build-kernels": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  process.stdout.write(`usage: npx tsx bench/density/run.ts [--count N] [--apps a,b] [--variants ${VARIANTS.map((v) => v.name).join(",")}] [--idle-seconds S] [--reserve-mib M] [--max-ready-seconds S] [--start-minutes M] [--parallel-starts N] [--build-kernels]\n`);
  process.exit(0);
}
const wholeNumber = (name: string, text: string, min: number): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number >= ${min}, got ${text}`);
  return n;
};
const count = wholeNumber("count", flags.count, 1);
const idleSeconds = wholeNumber("idle-seconds", flags["idle-seconds"], 1);
const reserveKiB = wholeNumber("reserve-mib", flags["reserve-mib"], 0) * 1024;
const maxReadyMs = wholeNumber("max-ready-seconds", flags["max-ready-seconds"], 1) * 1000;
const startBudgetMs = wholeNumber("start-minutes", flags["start-minutes"], 1) * 60_000;
const parallelStarts = wholeNumber("parallel-starts", flags["parallel-starts"], 1);
const variants = flags.variants.split(",").map((name) => {
  const variant = VARIANTS.find((v) => v.name === name);
  if (!variant) throw new Error(`unknown variant "${name}" (known: ${VARIANTS.map((v) => v.name).join(", ")})`);
  return variant;
});
if (variants.some((v) => v.ksm) && !ksmAvailable()) throw new Error("a KSM variant was asked for, but this host has no /sys/kernel/mm/ksm");
process.env.PITH_ACCEL = "tcg";
const log = (line: string): void => void process.stderr.write(`${line}\n`);

const running = new Map<number, Machine>();
let undoKsm: (() => void) | undefined;
const restoreKsm = (): void => {
  undoKsm?.();
  undoKsm = undefined;
};
cleanupOnExit(
  () => {
    running.forEach((_, pid) => killProcessGroup(pid));
    restoreKsm();
  },
  "stopping the machines and restoring KSM",
  log,
);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const mib = (kib: number): string => (kib / 1024).toFixed(1);

interface Result {
  app: string;
  variant: string;
  started: number;
  stoppedBy: string;
  readyMs: number;
  /** CPU time the machine's processes spent from start to ready: boot cost that a loaded host inflates less than wall time. */
  readyCpuMs: number;
  pssKiB: number[];
  cpuFraction: number[];
}

/** A machine's host processes: its QEMU and, when it has a network, its pith-net. */
async function hostPids(machine: Machine): Promise<number[]> {
  const [found] = await inspectProcesses([machine.pid]);
  return [machine.pid, ...(found?.netHelper ? [found.netHelper.pid] : [])];
}

/**
 * ksmd's pace while the bench waits for it to settle: 4x the pages per wake-up, 5x the wake-ups.
 * The state it reaches (which pages are merged) is the one the production pace reaches, only
 * sooner: at 1000 pages every 100 ms, two passes over 100 hello-ts machines take ~6 minutes.
 * The idle window is measured at the production pace.
 */
const KSM_SETTLE_SETTINGS: KsmSettings = { run: 1, pages_to_scan: 4000, sleep_millisecs: 20 };

/**
 * Waits until ksmd has made two full passes since now: a page merges only when it is unchanged
 * between two visits, so after two every machine's memory has been scanned and merged.
 */
async function ksmSettled(machines: number): Promise<void> {
  const undoSettlePace = applyKsmSettings(KSM_SETTLE_SETTINGS);
  try {
    const start = readKsmStats().fullScans;
    const limitMs = 180_000 + 3_000 * machines;
    const deadline = Date.now() + limitMs;
    while (readKsmStats().fullScans < start + 2) {
      if (Date.now() > deadline) throw new Error(`ksmd did not finish two full scans within ${limitMs / 1000} s`);
      await sleep(500);
    }
  } finally {
    undoSettlePace();
  }
  const { pagesShared, pagesSharing } = readKsmStats();
  log(`  ksm: ${pagesShared} pages shared, ${pagesSharing} sharing (${mib((pagesSharing * 4096) / 1024)} MiB saved)`);
}

/** The variant's measurements, or why it was skipped. */
async function measure(app: string, variant: DensityVariant, runtime: "node" | "native"): Promise<Result | string> {
  const dir = join(pithRoot(), "examples", app);
  const image = await buildImage(await loadAppManifest(dir), streamProgress(`building ${app}`));
  let files = await bootFiles(image);
  if (variant.kernelFragments) {
    const fragments = [...image.record.kernel.fragments, ...variant.kernelFragments];
    // A kernel build takes 5-45 minutes here: only with --build-kernels does the bench wait for one.
    const kernel = flags["build-kernels"] ? await ensureKernel(fragments, streamProgress(`kernel for ${app} ${variant.name}`)) : await cachedKernel(fragments);
    if (!kernel) return `no kernel built for ${fragments.join("+")} (build it with \`pith kernel build -f ${fragments.join(",")}\` or pass --build-kernels)`;
    files = { ...files, kernel: kernel.vmlinux };
  }
  const hypervisor = new QemuHypervisor({
    owner: "bench",
    ...(variant.tcgTranslationCacheMiB !== undefined ? { tcgTranslationCacheMiB: variant.tcgTranslationCacheMiB } : {}),
    ...(variant.freePageReporting ? { freePageReporting: true } : {}),
  });
  const env = runtime === "node" ? variant.env : undefined;
  const record = variant.memoryMiB ? { ...image.record, capabilities: { ...image.record.capabilities, memoryMiB: variant.memoryMiB } } : image.record;
  if (variant.ksm) undoKsm = applyKsmSettings(KSM_DENSITY_SETTINGS);
  const machines: Machine[] = [];
  const stateDirs: string[] = [];
  const readyMs: number[] = [];
  const readyCpuMs: number[] = [];
  let stoppedBy = `--count ${count}`;
  const startDeadline = Date.now() + startBudgetMs;
  let stopped = false;
  const stop = (reason: string): void => {
    if (!stopped) stoppedBy = reason;
    stopped = true;
  };
  /** Starts machines one after another until a bound; --parallel-starts of these run at once. */
  const starter = async (): Promise<void> => {
    while (!stopped && machines.length + starting < count) {
      const available = hostMemoryKiB().available;
      if (available < reserveKiB) return stop(`memory: MemAvailable ${mib(available)} MiB < reserve`);
      if (Date.now() > startDeadline) return stop(`time: --start-minutes ${startBudgetMs / 60_000}`);
      starting++;
      const number = ++numbered;
      let machine: Machine;
      try {
        const stateDir = await mkdtemp(join(tmpdir(), "pith-bench-density-"));
        stateDirs.push(stateDir);
        machine = await hypervisor.start({ id: `${app}-${variant.name}-${number}`, image: record, ...files, stateDir, ...(env ? { env } : {}) });
        running.set(machine.pid, machine);
        machines.push(machine);
      } finally {
        starting--;
      }
      const timings = await machine.whenReady();
      readyMs.push(timings.readyMs!);
      const bootCpuMs = ((await hostPids(machine)).reduce((sum, pid) => sum + cpuTicks(pid), 0) / CLOCK_TICKS_PER_SECOND) * 1000;
      readyCpuMs.push(bootCpuMs);
      log(`  ${app} ${variant.name} #${number}: ready in ${timings.readyMs} ms, ${bootCpuMs.toFixed(0)} ms CPU (load ${loadavg()[0]!.toFixed(1)}, MemAvailable ${mib(hostMemoryKiB().available)} MiB)`);
      if (timings.readyMs! > maxReadyMs) return stop(`cpu: a machine took ${timings.readyMs} ms to be ready`);
    }
  };
  let starting = 0;
  let numbered = 0;
  try {
    // allSettled: a starter that fails must not leave the other starting machines nobody stops.
    const outcomes = await Promise.allSettled(Array.from({ length: parallelStarts }, starter));
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
    if (failed) throw failed.reason;
    // Let the last boots' work settle (node's first GCs, the guest kernel's deferred work).
    await sleep(5000);
    if (variant.ksm) await ksmSettled(machines.length);
    const pids = await Promise.all(machines.map(hostPids));
    // ksmd works for the machines: its CPU is theirs, shared equally.
    const ksmd = variant.ksm ? kernelThreadPid("ksmd") : undefined;
    const ksmdBefore = ksmd ? cpuTicks(ksmd) : 0;
    const ticksBefore = pids.map((ps) => ps.reduce((sum, pid) => sum + cpuTicks(pid), 0));
    const windowStart = performance.now();
    await sleep(idleSeconds * 1000);
    const windowSeconds = (performance.now() - windowStart) / 1000;
    const ksmdShare = ksmd ? (cpuTicks(ksmd) - ksmdBefore) / CLOCK_TICKS_PER_SECOND / windowSeconds / machines.length : 0;
    if (ksmd) log(`  ksmd: ${(ksmdShare * machines.length * 100).toFixed(1)}% of a core, ${(ksmdShare * 100).toFixed(2)}% per machine`);
    const cpuFraction = pids.map((ps, i) => (ps.reduce((sum, pid) => sum + cpuTicks(pid), 0) - ticksBefore[i]!) / CLOCK_TICKS_PER_SECOND / windowSeconds + ksmdShare);
    const pss = pids.map((ps) => ps.reduce((sum, pid) => sum + pssKiB(pid), 0));
    // Every machine must still be alive and serving: a cost measured on a dead machine is no cost.
    for (const machine of machines) {
      const url = machine.ports[0]?.url;
      if (!url) continue;
      const answer = await fetch(url, { signal: AbortSignal.timeout(30_000) });
      await answer.text();
      if (answer.status !== 200) throw new Error(`${machine.id} answered ${answer.status} after the idle window`);
    }
    return { app, variant: variant.name, started: machines.length, stoppedBy, readyMs: median(readyMs), readyCpuMs: median(readyCpuMs), pssKiB: pss, cpuFraction };
  } finally {
    await Promise.all(
      machines.map(async (machine) => {
        await machine.stop(1000).catch(() => killProcessGroup(machine.pid));
        running.delete(machine.pid);
      }),
    );
    await Promise.all(stateDirs.map((d) => rm(d, { recursive: true, force: true })));
    restoreKsm();
  }
}

const host = hostMemoryKiB();
const cores = availableParallelism();
log(`density: ${count} machine(s) per app and variant, idle window ${idleSeconds} s, host ${mib(host.total)} MiB, ${cores} cores, load ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
for (const app of flags.apps.split(",")) if (app === "static-c") execFileSync("make", ["-s", "-C", join(pithRoot(), "examples", app)]);

/** One variant's row of the results table; machines per host extrapolated from its medians. */
function tableRow(r: Result): string {
  const pss = median(r.pssKiB);
  const cpu = median(r.cpuFraction);
  return (
    `| ${r.app} | ${r.variant} | ${r.started} (${r.stoppedBy}) | ${r.readyMs} ms | ${r.readyCpuMs.toFixed(0)} ms | ${mib(pss)} MiB (${mib(Math.min(...r.pssKiB))}-${mib(Math.max(...r.pssKiB))}) | ` +
    `${(cpu * 100).toFixed(2)}% (${(Math.max(...r.cpuFraction) * 100).toFixed(2)}%) | ${Math.floor(host.total / pss)} | ${cpu > 0 ? Math.floor(cores / cpu) : "inf"} |`
  );
}

const results: Result[] = [];
const skipped: string[] = [];
for (const app of flags.apps.split(",")) {
  const runtime = (await loadAppManifest(join(pithRoot(), "examples", app))).source.kind === "entry" ? "node" : "native";
  for (const variant of variants) {
    if (variant.runtime && variant.runtime !== runtime) continue;
    log(`${app} ${variant.name}: ${variant.what}`);
    const result = await measure(app, variant, runtime);
    if (typeof result === "string") {
      log(`  skipped: ${result}`);
      skipped.push(`${app} ${variant.name}: ${result}`);
      continue;
    }
    results.push(result);
    // The row as soon as it is known: a time-boxed run that is stopped later still leaves it.
    log(`  -> ${tableRow(result)}`);
  }
}

const lines = [
  `density ${new Date().toISOString()}: ${count} per variant, idle window ${idleSeconds} s, load at end ${loadavg().map((l) => l.toFixed(1)).join(" ")}, host ${mib(host.total)} MiB / ${cores} cores`,
  "| app | variant | started (stopped by) | ready median | boot CPU median | PSS/machine median (min-max) | idle CPU/machine median (max) | machines/host by memory | by CPU |",
  "|---|---|---|---|---|---|---|---|---|",
];
for (const r of results) lines.push(tableRow(r));
for (const line of skipped) lines.push(`skipped: ${line}`);
process.stdout.write(`${lines.join("\n")}\n`);
