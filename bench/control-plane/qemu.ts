/**
 * Control-plane overhead with real QEMU: control plane + NodeAgent with QemuHypervisor (TCG),
 * examples/static-c, replicas 1; T_total (create() -> machine phase "ready" seen by a watch)
 * against the machine's own boot-to-ready (status.timings.readyMs). Target: overhead under 5%.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import type { Hypervisor, Machine as RunningMachine, MachineSpec } from "../../src/hypervisor/hypervisor.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { QEMU_BINARY } from "../../src/hypervisor/qemu/qemu-binary.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles, resolveImage } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import type { Machine, MachineStatus } from "../../src/model/kinds.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import { execFile } from "../../src/shared/exec.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { benchQemuPids, killQemus, lastLogs, log, startCluster, stopCluster, STRAY_QEMU_PATTERN } from "./cluster.ts";
import { median, ms, table, waitUntil, withTimeout } from "./stats.ts";

const QEMU_WARMUP = 1;
const QEMU_READY_LIMIT_MS = 90_000;
const QEMU_GONE_LIMIT_MS = 60_000;
const OVERHEAD_TARGET = 0.05;

/** The agent's node name; its QEMUs are named `pith:agent.bench-cp/<machine>`. */
const QEMU_NODE = "bench-cp";
const QEMU_OWNER = `agent.${QEMU_NODE}`;

interface QemuRun {
  label: string;
  totalMs: number;
  readyMs: number;
  overheadMs: number;
  /** Watch receipt times, from the create() call. */
  marks: { createReturned: number; machineAdded?: number; scheduled?: number; booting?: number; started?: number; ready: number };
  /**
   * overhead = beforeStart + launch + afterReady, exactly: create() -> the agent calls
   * Hypervisor.start(); start() -> QemuMachine's clock starts (not in readyMs); the machine's
   * readiness known to the agent -> phase ready seen by the watch.
   */
  beforeStartMs: number;
  /** Part of beforeStart: the agent's boot source (the image store lookup the agent does by default), timed. */
  bootSourceMs: number;
  launchMs: number;
  afterReadyMs: number;
  timings: NonNullable<MachineStatus["timings"]>;
}

export interface QemuResult {
  skipped?: string;
  runs: QemuRun[];
  warmup: QemuRun[];
  medianTotalMs: number;
  medianReadyMs: number;
  medianOverheadMs: number;
  overheadPct: number;
  pass: boolean;
  qemu?: string;
  error?: string;
}

/**
 * The QEMU hypervisor, unchanged, with the agent's calls timed: when start() was called, and when
 * the machine's readiness resolved (the agent's own `whenReady` callback runs right after ours).
 */
class TimedHypervisor implements Hypervisor {
  readonly name: string;
  readonly calls = new Map<string, { startCalled: number; started?: number; ready?: number }>();

  constructor(private readonly inner: Hypervisor) {
    this.name = inner.name;
  }

  async start(spec: MachineSpec): Promise<RunningMachine> {
    const call: { startCalled: number; started?: number; ready?: number } = { startCalled: performance.now() };
    this.calls.set(spec.id, call);
    const machine = await this.inner.start(spec);
    call.started = performance.now();
    machine.whenReady().then(
      () => void (call.ready = performance.now()),
      () => {},
    );
    return machine;
  }

  recover(pids?: number[]): Promise<RunningMachine[]> {
    return this.inner.recover(pids);
  }

  snapshotTag(): Promise<string> {
    return this.inner.snapshotTag();
  }
}

export async function qemuOverhead(measuredRuns: number): Promise<QemuResult> {
  const empty = { runs: [], warmup: [], medianTotalMs: NaN, medianReadyMs: NaN, medianOverheadMs: NaN, overheadPct: NaN, pass: false };
  if (spawnSync("sh", ["-c", `command -v ${QEMU_BINARY}`]).status !== 0) return { ...empty, skipped: `${QEMU_BINARY} is not installed` };
  const qemu = (await execFile(QEMU_BINARY, ["--version"])).stdout.split("\n")[0]?.replace(/^QEMU emulator version /, "QEMU ") ?? "QEMU";
  const strays = benchQemuPids();
  if (strays.length > 0) {
    log(`killing ${strays.length} stray QEMU(s) of an earlier benchmark run (${STRAY_QEMU_PATTERN})`);
    killQemus();
  }

  const dir = join(pithRoot(), "examples/static-c");
  log("qemu: make -C examples/static-c, building its image");
  await execFile("make", ["-s", "-C", dir], { code: "BENCH_MAKE" });
  const image = await buildImage(await loadAppManifest(dir));
  await bootFiles(image); // unpack the boot files now, not in the first measured start

  const hypervisor = new TimedHypervisor(new QemuHypervisor({ owner: QEMU_OWNER }));
  // What NodeAgent does by default (its localBootSource: resolveImage + bootFiles), timed.
  let bootSourceMs = NaN;
  const bootSource = async (digest: string) => {
    const t = performance.now();
    const stored = await resolveImage(digest);
    const files = await bootFiles(stored);
    bootSourceMs = performance.now() - t;
    return { image: stored.record, ...files };
  };
  const cluster = await startCluster("qemu", { hypervisor, nodeName: QEMU_NODE, accelerator: "tcg", bootSource });
  const { client } = cluster;
  const abort = new AbortController();
  // One long-lived Machine watch for every run, so no run pays for opening it.
  const listeners = new Set<(m: Machine, type: string, now: number) => void>();
  try {
    const { metadata } = await client.list("Machine");
    const watching = client
      .watch("Machine", { resourceVersion: metadata.resourceVersion, signal: abort.signal }, (e) => {
        const now = performance.now();
        for (const l of listeners) l(e.object, e.type, now);
      })
      .catch((e: Error) => log(`machine watch ended: ${e.message}`));

    const runOnce = async (label: string): Promise<QemuRun> => {
      const name = `cp-${label}`;
      let t0 = 0;
      const marks: Partial<QemuRun["marks"]> = {};
      let onReady!: (m: Machine) => void;
      let onFailed!: (e: Error) => void;
      const ready = new Promise<Machine>((resolve, reject) => ((onReady = resolve), (onFailed = reject)));
      const listener = (m: Machine, type: string, now: number) => {
        if (m.spec.service !== name || type === "DELETED") return;
        const at = now - t0;
        if (type === "ADDED") marks.machineAdded ??= at;
        if (m.spec.node) marks.scheduled ??= at;
        if (m.status.phase === "booting" && m.status.pid === undefined) marks.booting ??= at;
        if (m.status.phase === "booting" && m.status.pid !== undefined) marks.started ??= at;
        if (m.status.phase === "ready" && marks.ready === undefined) {
          marks.ready = at;
          onReady(m);
        }
        if (m.status.phase === "failed") onFailed(new Error(`machine ${m.metadata.name} failed: ${m.status.reason}`));
      };
      listeners.add(listener);
      try {
        t0 = performance.now();
        await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name }, spec: { image: image.record.digest, replicas: 1 } });
        marks.createReturned = performance.now() - t0;
        const machine = await withTimeout(ready, QEMU_READY_LIMIT_MS, `service ${name}'s machine is ready`);
        const timings = machine.status.timings ?? {};
        if (timings.readyMs === undefined) throw new Error(`machine ${machine.metadata.name} is ready but reports no timings.readyMs`);
        const totalMs = marks.ready!;
        const call = hypervisor.calls.get(machine.metadata.name);
        if (call?.ready === undefined) throw new Error(`no start() or readiness recorded for ${machine.metadata.name}`);
        const beforeStartMs = call.startCalled - t0;
        return {
          label,
          totalMs,
          readyMs: timings.readyMs,
          overheadMs: totalMs - timings.readyMs,
          marks: marks as QemuRun["marks"],
          beforeStartMs,
          bootSourceMs,
          launchMs: call.ready - call.startCalled - timings.readyMs,
          afterReadyMs: totalMs - (call.ready - t0),
          timings,
        };
      } finally {
        listeners.delete(listener);
        await client.delete("Service", name).catch(() => undefined);
        // The agent stops the VM and then deletes the machine object.
        await waitUntil(
          async () => ((await client.list("Machine")).items.some((m) => m.spec.service === name) || benchQemuPids().length > 0 ? undefined : true),
          QEMU_GONE_LIMIT_MS,
          `service ${name}'s machine and VM are gone`,
          100,
        );
      }
    };

    const warmup: QemuRun[] = [];
    const runs: QemuRun[] = [];
    for (let i = 0; i < QEMU_WARMUP; i++) {
      warmup.push(await runOnce(`warmup-${i + 1}`));
      log(`qemu: warm-up: total ${ms(warmup.at(-1)!.totalMs)}, readyMs ${ms(warmup.at(-1)!.readyMs)}`);
    }
    for (let i = 0; i < measuredRuns; i++) {
      const r = await runOnce(`run-${i + 1}`);
      runs.push(r);
      log(`qemu: run ${i + 1}/${measuredRuns}: total ${ms(r.totalMs)}, readyMs ${ms(r.readyMs)}, overhead ${ms(r.overheadMs)}`);
    }
    abort.abort();
    await watching;
    const medianTotalMs = median(runs.map((r) => r.totalMs));
    const medianReadyMs = median(runs.map((r) => r.readyMs));
    const medianOverheadMs = median(runs.map((r) => r.overheadMs));
    const overheadPct = medianOverheadMs / medianReadyMs;
    return { runs, warmup, medianTotalMs, medianReadyMs, medianOverheadMs, overheadPct, pass: overheadPct < OVERHEAD_TARGET, qemu };
  } catch (e) {
    throw new Error(`qemu overhead: ${(e as Error).message}\n${lastLogs(cluster)}`);
  } finally {
    abort.abort();
    await stopCluster(cluster);
  }
}

export function formatQemu(r: QemuResult): string {
  if (r.skipped) return `3. control-plane overhead with QEMU: skipped, ${r.skipped}`;
  const row = (q: QemuRun) => [
    q.label,
    ms(q.totalMs),
    ms(q.readyMs),
    ms(q.overheadMs),
    ms(q.marks.machineAdded ?? NaN),
    ms(q.marks.scheduled ?? NaN),
    ms(q.beforeStartMs),
    ms(q.bootSourceMs),
    ms(q.launchMs),
    ms(q.afterReadyMs),
  ];
  const pct = (r.overheadPct * 100).toFixed(1);
  return [
    `3. control-plane overhead with real QEMU (${r.qemu}, TCG, examples/static-c, replicas 1, ${r.runs.length} runs after ${r.warmup.length} warm-up)`,
    table(
      ["run", "T_total", "readyMs", "overhead", "machine created", "scheduled", "= before start()", "(of it: boot source)", "+ launch", "+ after ready"],
      [...r.warmup.map(row), ...r.runs.map(row)],
    ),
    "   (T_total: create() called -> machine phase ready seen by a watch; readyMs: the hypervisor's own, from QemuMachine's start;",
    "    machine created / scheduled: when the watch saw it, from create(); overhead = before start() (create() -> agent calls Hypervisor.start)",
    "    + launch (start() -> QemuMachine's clock starts: state dir, port, spawn; not in readyMs) + after ready (agent knows -> watch sees phase ready))",
    `   medians of the parts: before start() ${ms(median(r.runs.map((q) => q.beforeStartMs)))} (boot source ${ms(median(r.runs.map((q) => q.bootSourceMs)))}), launch ${ms(median(r.runs.map((q) => q.launchMs)))}, after ready ${ms(median(r.runs.map((q) => q.afterReadyMs)))}`,
    `   median T_total ${ms(r.medianTotalMs)}, median readyMs ${ms(r.medianReadyMs)}, median overhead ${ms(r.medianOverheadMs)} = ${pct}% of readyMs ` +
      `(${((r.medianOverheadMs / r.medianTotalMs) * 100).toFixed(1)}% of T_total); target < ${OVERHEAD_TARGET * 100}%: ${r.pass ? "PASS" : "MISS"}`,
    ...(r.error ? [`   ${r.error}`] : []),
  ].join("\n");
}
