/**
 * Apply to running: a Service of N replicas on a fresh control plane with one NodeAgent
 * (FakeHypervisor, bootMs 0) talking HTTP to the API, timed from create() until its
 * status.ready === N, with the process's CPU time over the same span. See bench/README.md.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance as perfHooks } from "node:perf_hooks";
import { Informer } from "../../src/client/informer.ts";
import { FakeHypervisor } from "../../src/hypervisor/fake/fake-hypervisor.ts";
import type { Machine, Service } from "../../src/model/kinds.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import { storeSource } from "../../src/store/store-source.ts";
import { fakeBootSource, FAKE_IMAGE, lastLogs, log, registerFakeImage, startCluster, stopCluster } from "./cluster.ts";
import { metricsSnapshot, resetMetrics, startCpuProfile, type ProfileSummary, type TimeSpent } from "./profile.ts";
import { ms, sleep, table, withTimeout } from "./stats.ts";

/** One Service's scale-out may take this long before we stop and report how far it got. */
const APPLY_LIMIT_MS = 300_000;
const SERVICE_MAX_REPLICAS = 1000;
/** The first control plane in a process pays for JIT and first use (N=1: ~250 ms cold against ~50 ms warm). */
export const APPLY_WARMUP_N = 10;

interface Progress {
  atMs: number;
  created: number;
  scheduled: number;
  started: number;
  ready: number;
}

export interface ApplyResult {
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

export async function applyOnce(n: number, profile: boolean): Promise<ApplyResult> {
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

export function formatApply(results: ApplyResult[]): string {
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
