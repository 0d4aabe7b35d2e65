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
 * Every part bounds its duration; control planes are closed, agents stopped, and every QEMU this
 * benchmark started is stopped, also on errors and Ctrl-C. See bench/README.md.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance as perfHooks } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { NodeAgent, type NodeAgentOptions } from "../../src/agent/node-agent.ts";
import { PithClient } from "../../src/client/index.ts";
import { Informer } from "../../src/client/informer.ts";
import { storeSource } from "../../src/store/store-source.ts";
import { fakeBootSource as fakeBootSourceFor } from "../../src/hypervisor/fake/fake-boot-source.ts";
import { FakeHypervisor } from "../../src/hypervisor/fake/fake-hypervisor.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { QEMU_BINARY } from "../../src/hypervisor/qemu/qemu-binary.ts";
import type { Hypervisor, Machine as RunningMachine, MachineSpec } from "../../src/hypervisor/hypervisor.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles, resolveImage } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import type { Machine, MachineStatus, Service } from "../../src/model/kinds.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import { startControlPlane, type ControlPlane } from "../../src/server/control-plane.ts";
import { execFile } from "../../src/shared/exec.ts";
import { pithHome, pithRoot } from "../../src/shared/paths.ts";
import { metricsSnapshot, resetMetrics, startCpuProfile, type ProfileSummary, type TimeSpent } from "./profile.ts";
import { median, ms, percentile, sleep, table, waitUntil, withTimeout } from "./stats.ts";
import { cleanupOnExit, killProcessGroup, readFileOrEmpty } from "../bench-process.ts";

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

/** One Service's scale-out may take this long before we stop and report how far it got. */
const APPLY_LIMIT_MS = 300_000;
const SERVICE_MAX_REPLICAS = 1000;
const APPLY_WARMUP_N = 10;
const WATCHERS = 10;
const WATCH_WRITES = 300;
const WATCH_GAP_MS = 5;
const QEMU_RUNS = flags.quick ? 3 : 5;
const QEMU_WARMUP = 1;
const QEMU_READY_LIMIT_MS = 90_000;
const QEMU_GONE_LIMIT_MS = 60_000;
const OVERHEAD_TARGET = 0.05;
/** The whole benchmark, whatever happens. */
const TOTAL_LIMIT_MS = (flags.quick ? 20 : 30) * 60_000;

/** The agent's node name; its QEMUs are named `pith:agent.bench-cp/<machine>`. */
const QEMU_NODE = "bench-cp";
const QEMU_OWNER = `agent.${QEMU_NODE}`;
const STRAY_QEMU_PATTERN = "pith:agent\\.bench-";

const log = (line: string): void => void process.stderr.write(`${line}\n`);

function fatal(message: string): never {
  log(`bench/control-plane: ${message}`);
  process.exit(2);
}

// Like `pith agent` on this host, but never spend a boot probing KVM.
process.env.PITH_ACCEL = "tcg";
const REAL_HOME = pithHome();

// ---- cleanup: every home we made, every QEMU we started, even on Ctrl-C, error or time-out ----

const homes = new Set<string>();

/** QEMU processes of this benchmark's agents (their -name is pith:agent.bench-...). */
function benchQemuPids(): number[] {
  const out = spawnSync("pgrep", ["-f", STRAY_QEMU_PATTERN], { encoding: "utf8" }).stdout ?? "";
  return out
    .split("\n")
    .map(Number)
    .filter((pid) => pid > 0 && pid !== process.pid);
}

function killQemus(): number {
  const pids = new Set(benchQemuPids());
  for (const home of homes) {
    const machines = join(home, "machines");
    if (!existsSync(machines)) continue;
    for (const m of readdirSync(machines)) {
      const pid = Number(readFileOrEmpty(join(machines, m, "vm", "qemu.pid")).trim());
      if (pid > 0) pids.add(pid);
    }
  }
  let killed = 0;
  for (const pid of pids) {
    // QEMU is spawned detached: it leads its own process group.
    if (killProcessGroup(pid)) killed++;
  }
  return killed;
}

function cleanupSync(): void {
  killQemus();
  for (const home of homes) rmSync(home, { recursive: true, force: true });
  homes.clear();
}


cleanupOnExit(cleanupSync, `stopping the benchmark's machines and removing its files`, log);
const watchdog = setTimeout(() => {
  log(`bench/control-plane: the whole benchmark took over ${TOTAL_LIMIT_MS / 60_000} min: giving up`);
  cleanupSync();
  process.exit(3);
}, TOTAL_LIMIT_MS);
watchdog.unref();

// ---- a control plane (and an agent) in this process, in a PITH_HOME of its own ----

interface Cluster {
  home: string;
  cp: ControlPlane;
  /** The benchmark's own client (the agent has another). */
  client: PithClient;
  agent: NodeAgent | undefined;
  logs: string[];
}

/**
 * A fresh PITH_HOME (new state.db and token) sharing kernels, images and tools with the real
 * one through symlinks, like test/support/cluster.ts; the control plane on a free port.
 */
async function startCluster(tag: string, agent?: Omit<NodeAgentOptions, "client" | "log">): Promise<Cluster> {
  const home = mkdtempSync(join(tmpdir(), `pith-bench-cp-${tag}-`));
  homes.add(home);
  for (const shared of ["kernel", "images", "tools"]) {
    mkdirSync(join(REAL_HOME, shared), { recursive: true });
    symlinkSync(join(REAL_HOME, shared), join(home, shared));
  }
  process.env.PITH_HOME = home;
  const logs: string[] = [];
  const keep = (prefix: string) => (line: string) => {
    logs.push(`${prefix} ${line}`);
    if (logs.length > 400) logs.splice(0, logs.length - 200);
  };
  const cp = await startControlPlane({ host: "127.0.0.1", port: 0, log: keep("[cp]") });
  const cluster: Cluster = { home, cp, client: new PithClient({ server: cp.url, token: cp.token }), agent: undefined, logs };
  if (agent) {
    try {
      cluster.agent = new NodeAgent({ ...agent, client: new PithClient({ server: cp.url, token: cp.token }), log: keep("[agent]") });
      await withTimeout(cluster.agent.start(), 30_000, "the node agent starts");
    } catch (e) {
      await stopCluster(cluster);
      throw e;
    }
  }
  return cluster;
}

async function stopCluster(cluster: Cluster): Promise<void> {
  cluster.agent?.stop();
  // Should closing hang, say what is still open (sockets by local -> remote port).
  const slow = setTimeout(() => log(`  control plane still closing after 5 s; open: ${openHandles()}`), 5000);
  await withTimeout(cluster.cp.close(), 15_000, "the control plane closes").catch((e: Error) => log(`warning: ${e.message}`));
  clearTimeout(slow);
  // Machines of this home that are still running (only after a failure) go now.
  const killed = killQemus();
  if (killed > 0) log(`warning: killed ${killed} leftover QEMU process(es)`);
  rmSync(cluster.home, { recursive: true, force: true });
  homes.delete(cluster.home);
  process.env.PITH_HOME = REAL_HOME;
}

function openHandles(): string {
  const handles = (process as unknown as { _getActiveHandles(): { constructor: { name: string }; localPort?: number; remotePort?: number }[] })._getActiveHandles();
  return handles.map((h) => `${h.constructor.name}${h.remotePort ? ` ${h.localPort}->${h.remotePort}` : h.localPort ? ` listening ${h.localPort}` : ""}`).join(", ");
}

const lastLogs = (cluster: Cluster, n = 15): string => cluster.logs.slice(-n).join("\n");

// ---- 1. apply to running, fake hypervisor ----

const FAKE_IMAGE = "bench-fake";
const FAKE_DIGEST = `sha256:${createHash("sha256").update("pith bench/control-plane fake image").digest("hex")}`;

/** What the agent would boot: an image record and files that do not matter to FakeHypervisor. */
const fakeBootSource = fakeBootSourceFor(FAKE_IMAGE);

async function registerFakeImage(client: PithClient): Promise<void> {
  await client.create({
    apiVersion: API_VERSION,
    kind: "Image",
    metadata: { name: FAKE_IMAGE, labels: { "pith.dev/name": FAKE_IMAGE } },
    spec: { digest: FAKE_DIGEST, runtime: "native", memoryMiB: 16, vcpus: 1, listen: [], egress: [], storedBytes: 0 },
  });
}

interface Progress {
  atMs: number;
  created: number;
  scheduled: number;
  started: number;
  ready: number;
}

interface ApplyResult {
  n: number;
  /** Time until status.ready === n; undefined if the limit was hit first. */
  readyMs: number | undefined;
  reached: number;
  createCallMs: number;
  milestones: { allCreatedMs?: number; allScheduledMs?: number; allStartedMs?: number; firstReadyMs?: number; halfReadyMs?: number };
  /** Fraction of the wall time this process's event loop was busy (control plane, agent and client share it). */
  eventLoopBusy: number;
  /** CPU time (user + system) of this process from create() to ready=N, and per machine. */
  cpuMs: number;
  cpuPerMachineMs: number;
  reconciles: TimeSpent[];
  requests: TimeSpent[];
  progress: Progress[];
  profile?: ProfileSummary;
  error?: string;
}

async function applyOnce(n: number, profile: boolean): Promise<ApplyResult> {
  const cluster = await startCluster(`apply-${n}`, {
    hypervisor: new FakeHypervisor({ bootMs: 0 }),
    nodeName: "bench-fake",
    accelerator: "tcg",
    // Room for every machine whatever N is (2000 at least, as the numbers before 10,000 were taken).
    capacity: { memoryMiB: 16 * Math.max(2000, 2 * n), vcpus: Math.max(2000, 2 * n) },
    bootSource: fakeBootSource,
    heartbeatMs: 5000,
    resyncMs: 10_000,
  });
  const { client, cp } = cluster;
  const abort = new AbortController();
  const progress: Progress[] = [];
  const milestones: ApplyResult["milestones"] = {};
  let profiler: Awaited<ReturnType<typeof startCpuProfile>> | undefined;
  try {
    await registerFakeImage(client);
    // A Service holds at most 1000 replicas (the API's bound): larger N is several services.
    const names = Array.from({ length: Math.ceil(n / SERVICE_MAX_REPLICAS) }, (_, i) => (n <= SERVICE_MAX_REPLICAS ? "fleet" : `fleet-${i}`));
    const replicasOf = (i: number) => Math.min(SERVICE_MAX_REPLICAS, n - i * SERVICE_MAX_REPLICAS);
    const readyBy = new Map<string, number>();
    resetMetrics();

    let resolveReady!: () => void;
    const allReady = new Promise<void>((resolve) => (resolveReady = resolve));
    let t0 = 0;
    let reached = 0;
    let readyAt: number | undefined;
    const seen = (service: Service, now: number) => {
      if (!names.includes(service.metadata.name)) return;
      readyBy.set(service.metadata.name, Math.max(readyBy.get(service.metadata.name) ?? 0, service.status.ready ?? 0));
      let ready = 0;
      for (const r of readyBy.values()) ready += r;
      reached = Math.max(reached, ready);
      if (ready > 0) milestones.firstReadyMs ??= now - t0;
      if (ready >= n / 2) milestones.halfReadyMs ??= now - t0;
      if (ready >= n && readyAt === undefined) {
        readyAt = now;
        resolveReady();
      }
    };
    const { metadata } = await client.list("Service");
    const watching = client
      .watch("Service", { resourceVersion: metadata.resourceVersion, signal: abort.signal }, (e) => seen(e.object, performance.now()))
      .catch((e: Error) => log(`service watch ended: ${e.message}`));

    // Progress by stage, counted every 250 ms from a cache of the machines: a store list would
    // parse every machine each time, which the CPU figures would count as Pith's.
    const progressCache = new Informer(storeSource<Machine>(cp.store, "Machine"));
    const caching = progressCache.run(abort.signal);
    await progressCache.synced();
    const sampler = setInterval(() => {
      void Promise.resolve(progressCache.list()).then((items) => {
        const mine = items.filter((m) => m.spec.service !== undefined && names.includes(m.spec.service));
        const p: Progress = {
          atMs: Math.round(performance.now() - t0),
          created: mine.length,
          scheduled: mine.filter((m) => m.spec.node).length,
          started: mine.filter((m) => m.status.pid !== undefined).length,
          ready: mine.filter((m) => m.status.phase === "ready").length,
        };
        progress.push(p);
        if (p.created >= n) milestones.allCreatedMs ??= p.atMs;
        if (p.scheduled >= n) milestones.allScheduledMs ??= p.atMs;
        if (p.started >= n) milestones.allStartedMs ??= p.atMs;
        if (progress.length % 60 === 0) log(`  N=${n}: ${(p.atMs / 1000).toFixed(0)} s: created ${p.created}, scheduled ${p.scheduled}, started ${p.started}, ready ${p.ready}`);
      }, () => {});
    }, 250);

    if (profile) profiler = await startCpuProfile(join(tmpdir(), `pith-bench-cp-apply-${n}.cpuprofile`));
    const elu0 = perfHooks.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    t0 = performance.now();
    for (const [i, name] of names.entries()) {
      await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name }, spec: { image: FAKE_IMAGE, replicas: replicasOf(i) } });
    }
    const createCallMs = performance.now() - t0;
    // Safety net besides the watch: the store itself, every 10 ms.
    const poll = (async () => {
      while (!abort.signal.aborted && readyAt === undefined) {
        for (const name of names) {
          const s = await cp.store.get<Service>("Service", name).catch(() => undefined);
          if (s) seen(s, performance.now());
        }
        await sleep(10);
      }
    })();
    let error: string | undefined;
    await withTimeout(allReady, APPLY_LIMIT_MS, `${n} machines ready`).catch((e: Error) => (error = e.message));
    const eventLoopBusy = perfHooks.eventLoopUtilization(elu0).utilization;
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    clearInterval(sampler);
    abort.abort();
    const profileSummary = await profiler?.stop();
    profiler = undefined;
    await poll;
    await watching;
    await caching;
    const { reconciles, requests } = await metricsSnapshot();
    if (error) {
      const { items } = await cp.store.list<Machine>("Machine");
      const mine = items.filter((m) => m.spec.service !== undefined && names.includes(m.spec.service));
      error += `; reached ${reached}/${n} ready; machines: ${mine.length} created, ${mine.filter((m) => m.spec.node).length} scheduled, ${mine.filter((m) => m.status.pid !== undefined).length} started`;
    }
    return {
      n,
      readyMs: readyAt === undefined ? undefined : readyAt - t0,
      reached,
      createCallMs,
      milestones,
      eventLoopBusy,
      cpuMs,
      cpuPerMachineMs: cpuMs / n,
      reconciles,
      requests,
      progress,
      ...(profileSummary ? { profile: profileSummary } : {}),
      ...(error ? { error } : {}),
    };
  } catch (e) {
    throw new Error(`apply N=${n}: ${(e as Error).message}\n${lastLogs(cluster)}`);
  } finally {
    abort.abort();
    await profiler?.stop().catch(() => undefined);
    await stopCluster(cluster);
  }
}

// ---- 2. watch-event latency ----

interface WatchResult {
  watchers: number;
  writes: number;
  samples: number;
  expected: number;
  duplicates: number;
  outOfOrder: number;
  /** MODIFIED events with a T already seen: the service reconciler's status writes after each spec change. */
  otherEvents: number;
  p50: number;
  p99: number;
  max: number;
  writeP50: number;
  error?: string;
}

async function watchLatency(): Promise<WatchResult> {
  const cluster = await startCluster("watch");
  const { client, cp } = cluster;
  const abort = new AbortController();
  try {
    await registerFakeImage(client);
    const name = "watched";
    const spec = (T: string) => ({ image: FAKE_IMAGE, replicas: 0, env: { T } });
    await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name }, spec: spec("init") });
    const { metadata } = await client.list("Service");

    const watchers = Array.from({ length: WATCHERS }, () => ({
      firstSeen: new Map<string, number>(),
      revisions: new Set<string>(),
      duplicates: 0,
      outOfOrder: 0,
      other: 0,
      lastT: Number.NEGATIVE_INFINITY,
    }));
    const done = watchers.map((w) =>
      new PithClient({ server: cp.url, token: cp.token })
        .watch("Service", { resourceVersion: metadata.resourceVersion, signal: abort.signal }, (event) => {
          const now = performance.now();
          if (event.object.metadata.name !== name) return;
          const rv = event.object.metadata.resourceVersion;
          if (w.revisions.has(rv)) {
            w.duplicates++;
            return;
          }
          w.revisions.add(rv);
          const T = String(event.object.spec.env?.T ?? "");
          if (w.firstSeen.has(T)) {
            w.other++;
            return;
          }
          w.firstSeen.set(T, now);
          const t = Number(T);
          if (Number.isFinite(t)) {
            if (t < w.lastT) w.outOfOrder++;
            w.lastT = t;
          }
        })
        .catch((e: Error) => log(`watch ended: ${e.message}`)),
    );

    // Every watcher's stream is open once all have seen a first write.
    await client.update({ apiVersion: API_VERSION, kind: "Service", metadata: { name }, spec: spec("warm-up") });
    await waitUntil(() => (watchers.every((w) => w.firstSeen.has("warm-up")) ? true : undefined), 15_000, "every watcher sees the warm-up write", 5);

    const sent: string[] = [];
    const writeMs: number[] = [];
    for (let i = 0; i < WATCH_WRITES; i++) {
      const T = String(performance.now());
      sent.push(T);
      await client.update({ apiVersion: API_VERSION, kind: "Service", metadata: { name }, spec: spec(T) });
      writeMs.push(performance.now() - Number(T));
      await sleep(WATCH_GAP_MS);
    }
    let error: string | undefined;
    await waitUntil(() => (watchers.every((w) => sent.every((T) => w.firstSeen.has(T))) ? true : undefined), 15_000, "every watcher has every write", 10).catch(
      (e: Error) => (error = e.message),
    );
    // A moment for late duplicates to show up, if there were any.
    await sleep(200);
    abort.abort();
    await Promise.all(done);

    const latencies: number[] = [];
    for (const w of watchers) for (const T of sent) if (w.firstSeen.has(T)) latencies.push(w.firstSeen.get(T)! - Number(T));
    return {
      watchers: WATCHERS,
      writes: WATCH_WRITES,
      samples: latencies.length,
      expected: WATCHERS * WATCH_WRITES,
      duplicates: watchers.reduce((a, w) => a + w.duplicates, 0),
      outOfOrder: watchers.reduce((a, w) => a + w.outOfOrder, 0),
      otherEvents: watchers.reduce((a, w) => a + w.other, 0),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: Math.max(...latencies),
      writeP50: median(writeMs),
      ...(error ? { error } : {}),
    };
  } catch (e) {
    throw new Error(`watch latency: ${(e as Error).message}\n${lastLogs(cluster)}`);
  } finally {
    abort.abort();
    await stopCluster(cluster);
  }
}

// ---- 3. control-plane overhead with real QEMU ----

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

interface QemuResult {
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

async function qemuOverhead(): Promise<QemuResult> {
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
    for (let i = 0; i < QEMU_RUNS; i++) {
      const r = await runOnce(`run-${i + 1}`);
      runs.push(r);
      log(`qemu: run ${i + 1}/${QEMU_RUNS}: total ${ms(r.totalMs)}, readyMs ${ms(r.readyMs)}, overhead ${ms(r.overheadMs)}`);
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

// ---- report ----

function formatApply(results: ApplyResult[]): string {
  const rows = results.map((r) => [
    String(r.n),
    r.readyMs !== undefined ? ms(r.readyMs) : `> ${APPLY_LIMIT_MS / 1000} s (${r.reached} ready)`,
    r.readyMs !== undefined ? (r.n / (r.readyMs / 1000)).toFixed(1) : (r.reached / (APPLY_LIMIT_MS / 1000)).toFixed(1),
    ms(r.milestones.allCreatedMs ?? NaN),
    ms(r.milestones.allScheduledMs ?? NaN),
    ms(r.milestones.firstReadyMs ?? NaN),
    ms(r.milestones.halfReadyMs ?? NaN),
    `${(r.eventLoopBusy * 100).toFixed(0)}%`,
    ms(r.cpuMs),
    `${r.cpuPerMachineMs.toFixed(2)} ms`,
  ]);
  const out = [
    `1. apply to running (FakeHypervisor bootMs 0, one agent over HTTP, fresh control plane per N, after an unmeasured N=${APPLY_WARMUP_N})`,
    table(["N", "create -> ready=N", "machines/s", "all created", "all scheduled", "first ready", "half ready", "loop busy", "CPU", "CPU/machine"], rows),
    "   (all created/scheduled: first 250-ms sample with every machine at that stage (n/a: done before the first sample); first/half ready: from the service's",
    "    status; loop busy: event-loop utilisation of this one process, which runs the control plane, the agent and the benchmark's client;",
    "    CPU: user + system time of that process from create() to ready=N, including the 250-ms progress sampler's lists)",
  ];
  for (const r of results) {
    if (r.error) out.push(`   N=${r.n}: ${r.error}`);
    if (r.n < 100) continue;
    const wall = r.readyMs ?? APPLY_LIMIT_MS;
    out.push(
      `   N=${r.n}, time inside reconciles (of ${ms(wall)} wall): ${r.reconciles.map((c) => `${c.name} ${ms(c.totalMs)} in ${c.count}`).join(", ")}`,
      `   N=${r.n}, API requests (count, total handler time): ${r.requests
        .slice(0, 8)
        .map((q) => `${q.name} ${q.count} / ${ms(q.totalMs)}`)
        .join("; ")}`,
    );
    if (r.profile) {
      out.push(`   N=${r.n}, CPU profile (${r.profile.file}, ${ms(r.profile.totalMs)}) by area:`);
      out.push(...r.profile.byArea.slice(0, 14).map((a) => `      ${ms(a.ms).padStart(10)}  ${a.area}`));
      out.push("     inclusive time of Pith functions:");
      out.push(...r.profile.inclusiveTop.map((f) => `      ${ms(f.ms).padStart(10)}  ${f.fn}`));
      out.push("     self time, top functions:");
      out.push(...r.profile.selfTop.map((f) => `      ${ms(f.ms).padStart(10)}  ${f.fn}`));
    }
  }
  return out.join("\n");
}

function formatWatch(r: WatchResult): string {
  const ok = r.samples === r.expected && r.duplicates === 0 && r.outOfOrder === 0;
  return [
    `2. watch-event latency (${r.watchers} watchers x ${r.writes} awaited updates, ${WATCH_GAP_MS} ms apart; latency = receipt - T, same clock)`,
    table(
      ["p50", "p99", "max", "received", "duplicates", "out of order", "update() p50", "check"],
      [[ms(r.p50, 1), ms(r.p99, 1), ms(r.max, 1), `${r.samples}/${r.expected}`, String(r.duplicates), String(r.outOfOrder), ms(r.writeP50, 1), ok ? "OK" : "FAIL"]],
    ),
    `   (also received ${r.otherEvents} later events of the same T: the service reconciler's status writes after each spec change)`,
    ...(r.error ? [`   ${r.error}`] : []),
  ].join("\n");
}

function formatQemu(r: QemuResult): string {
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
      report.qemu = await qemuOverhead();
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
