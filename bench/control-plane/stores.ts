/**
 * Store benchmark: the same control-plane work on SQLite and on a 3-member etcd cluster, side by side.
 *
 *   npx tsx bench/control-plane/stores.ts [--sizes 1,100,1000] [--runs 1] [--json]
 *
 * 1. apply: a control plane (API + controllers) and 3 NodeAgents (FakeHypervisor, bootMs 0) in this
 *    process, the agents on HTTP through PithClients; a Service of N replicas, timed from create()
 *    until its status.ready === N. A fresh control plane (SQLite file, or etcd prefix) per run.
 * 2. watch: 5 PithClient watchers on Service; a writer updates spec.env.T = performance.now() 200
 *    times, 5 ms apart; each watcher records now - T on receipt (write to event seen, through the
 *    store, the API and HTTP).
 * Backends alternate within each size (sqlite, etcd, sqlite, etcd...), so drift hits both.
 * Every part bounds its duration; control planes, agents and the etcd cluster are stopped on
 * errors and Ctrl-C too. See bench/README.md.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { NodeAgent } from "../../src/agent/node-agent.ts";
import { PithClient } from "../../src/client/index.ts";
import { fakeBootSource } from "../../src/hypervisor/fake/fake-boot-source.ts";
import { FakeHypervisor } from "../../src/hypervisor/fake/fake-hypervisor.ts";
import type { Service } from "../../src/model/kinds.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import { startControlPlane, type ControlPlane } from "../../src/server/control-plane.ts";
import type { StoreConfig } from "../../src/server/store-backend.ts";
import { EtcdTestCluster, etcdMissing } from "../../src/store/etcd/test-cluster.ts";
import { median, ms, percentile, sleep, table, withTimeout } from "./stats.ts";

const { values: flags } = parseArgs({
  options: {
    sizes: { type: "string", default: "1,100,1000" },
    runs: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  process.stdout.write("usage: npx tsx bench/control-plane/stores.ts [--sizes 1,100,1000] [--runs N] [--json]\n");
  process.exit(0);
}
const sizes = flags.sizes.split(",").map(Number);
const runs = Number(flags.runs);
if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 1000)) fatal(`--sizes must be whole numbers from 1 to 1000 (one service), got ${flags.sizes}`);
if (!Number.isInteger(runs) || runs < 1) fatal(`--runs must be a whole number >= 1, got ${flags.runs}`);
const missing = etcdMissing();
if (missing) fatal(missing);

type Backend = "sqlite" | "etcd";
const BACKENDS: Backend[] = ["sqlite", "etcd"];
const AGENTS = 3;
const APPLY_LIMIT_MS = 300_000;
const WATCHERS = 5;
const WATCH_WRITES = 200;
const WATCH_GAP_MS = 5;
const IMAGE = "bench-stores";
const DIGEST = `sha256:${createHash("sha256").update("pith bench/control-plane/stores fake image").digest("hex")}`;
const REAL_HOME = process.env.PITH_HOME;

const log = (line: string) => process.stderr.write(`${line}\n`);
function fatal(message: string): never {
  process.stderr.write(`stores bench: ${message}\n`);
  process.exit(2);
}

let etcd: EtcdTestCluster | undefined;
const cleanups = new Set<() => Promise<void>>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void Promise.allSettled([...cleanups].map((c) => c())).finally(() => {
      etcd?.destroyNow();
      process.exit(130);
    });
  });
}

interface World {
  plane: ControlPlane;
  client: PithClient;
  agents: NodeAgent[];
  close(): Promise<void>;
}

/** A control plane on `backend` with 3 fake-hypervisor agents, in a PITH_HOME of its own. */
async function startWorld(backend: Backend, tag: string): Promise<World> {
  const home = mkdtempSync(join(tmpdir(), `pith-bench-stores-${tag}-`));
  mkdirSync(home, { recursive: true });
  process.env.PITH_HOME = home;
  const store: StoreConfig =
    backend === "sqlite" ? { kind: "sqlite", path: join(home, "state.db") } : { kind: "etcd", endpoints: etcd!.endpoints, prefix: `/bench-${tag}/`, onWatcherError: () => {} };
  const plane = await startControlPlane({ host: "127.0.0.1", port: 0, store, resyncMs: 10_000 });
  const agents: NodeAgent[] = [];
  const world: World = {
    plane,
    client: new PithClient({ server: plane.url, token: plane.token }),
    agents,
    async close() {
      cleanups.delete(world.close);
      for (const agent of agents) agent.stop();
      await withTimeout(plane.close(), 15_000, "the control plane closes").catch((e: Error) => log(`warning: ${e.message}`));
      rmSync(home, { recursive: true, force: true });
      process.env.PITH_HOME = REAL_HOME;
    },
  };
  cleanups.add(world.close);
  try {
    for (let i = 0; i < AGENTS; i++) {
      const agent = new NodeAgent({
        client: new PithClient({ server: plane.url, token: plane.token }),
        hypervisor: new FakeHypervisor({ bootMs: 0 }),
        nodeName: `bench-${i}`,
        accelerator: "tcg",
        capacity: { memoryMiB: 16 * 2000, vcpus: 2000 },
        bootSource: fakeBootSource(IMAGE),
        heartbeatMs: 5000,
        resyncMs: 10_000,
      });
      await withTimeout(agent.start(), 30_000, "a node agent starts");
      agents.push(agent);
    }
    // The controllers run once elected (at once with SQLite, after the first campaign with etcd).
    await withTimeout(
      (async () => {
        while (!plane.leadership.isLeader()) await sleep(20);
      })(),
      30_000,
      "the control plane leads",
    );
    await world.client.create({
      apiVersion: API_VERSION,
      kind: "Image",
      metadata: { name: IMAGE, labels: { "pith.dev/name": IMAGE } },
      spec: { digest: DIGEST, runtime: "native", memoryMiB: 16, vcpus: 1, listen: [], egress: [], storedBytes: 0 },
    });
  } catch (error) {
    await world.close();
    throw error;
  }
  return world;
}

/** create() of an N-replica service until its status says N ready. */
async function applyOnce(backend: Backend, n: number, run: number): Promise<number | undefined> {
  const world = await startWorld(backend, `${backend}-${n}-${run}`);
  const abort = new AbortController();
  try {
    const { client } = world;
    let done!: (at: number) => void;
    const ready = new Promise<number>((resolve) => (done = resolve));
    const { metadata } = await client.list("Service");
    const watching = client
      .watch("Service", { resourceVersion: metadata.resourceVersion, signal: abort.signal }, (e) => {
        if (e.object.metadata.name === "fleet" && ((e.object as Service).status.ready ?? 0) >= n) done(performance.now());
      })
      .catch((e: Error) => log(`service watch ended: ${e.message}`));
    const t0 = performance.now();
    await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "fleet" }, spec: { image: IMAGE, replicas: n } });
    const readyAt = await withTimeout(ready, APPLY_LIMIT_MS, `${n} machines ready on ${backend}`).catch((e: Error) => {
      log(`  ${e.message}`);
      return undefined;
    });
    abort.abort();
    await watching;
    return readyAt === undefined ? undefined : readyAt - t0;
  } finally {
    abort.abort();
    await world.close();
  }
}

/** Write-to-event latency seen by WATCHERS watchers over HTTP. */
async function watchLatency(backend: Backend, run: number): Promise<number[]> {
  const world = await startWorld(backend, `${backend}-watch-${run}`);
  const abort = new AbortController();
  try {
    const { client } = world;
    await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "probe" }, spec: { image: IMAGE, replicas: 0 } });
    const latencies: number[] = [];
    const seen = new Array<number>(WATCHERS).fill(0);
    const { metadata } = await client.list("Service");
    const watchers = Array.from({ length: WATCHERS }, (_, i) =>
      new PithClient({ server: world.plane.url, token: world.plane.token })
        .watch("Service", { resourceVersion: metadata.resourceVersion, signal: abort.signal }, (e) => {
          const stamp = Number((e.object as Service).spec.env?.T);
          if (e.object.metadata.name !== "probe" || !Number.isFinite(stamp)) return;
          latencies.push(performance.now() - stamp);
          seen[i]!++;
        })
        .catch((e: Error) => log(`watcher ${i} ended: ${e.message}`)),
    );
    for (let i = 0; i < WATCH_WRITES; i++) {
      const current = (await client.get("Service", "probe"))!;
      await client.update({
        apiVersion: API_VERSION,
        kind: "Service",
        metadata: { name: "probe" }, // no resourceVersion: the controller writes this service's status meanwhile
        spec: { ...current.spec, env: { T: String(performance.now()) } },
      });
      await sleep(WATCH_GAP_MS);
    }
    await withTimeout(
      (async () => {
        while (seen.some((count) => count < WATCH_WRITES)) await sleep(20);
      })(),
      30_000,
      "every watcher sees every write",
    ).catch((e: Error) => log(`  ${e.message} (${seen.join(", ")} of ${WATCH_WRITES})`));
    abort.abort();
    await Promise.all(watchers);
    return latencies;
  } finally {
    abort.abort();
    await world.close();
  }
}

async function main(): Promise<void> {
  log(`stores bench: sizes ${sizes.join(", ")}, ${runs} run(s) each, ${AGENTS} agents; load ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
  etcd = await EtcdTestCluster.start(3);
  try {
    const apply: Record<Backend, Map<number, number[]>> = { sqlite: new Map(), etcd: new Map() };
    for (const n of sizes) {
      for (let run = 0; run < runs; run++) {
        for (const backend of BACKENDS) {
          const took = await applyOnce(backend, n, run);
          log(`  apply ${n} on ${backend}: ${took === undefined ? "did not finish" : ms(took)}`);
          const list = apply[backend].get(n) ?? [];
          list.push(took ?? Number.NaN);
          apply[backend].set(n, list);
        }
      }
    }
    const watch: Record<Backend, number[]> = { sqlite: [], etcd: [] };
    for (let run = 0; run < runs; run++) {
      for (const backend of BACKENDS) watch[backend].push(...(await watchLatency(backend, run)));
    }

    const rows = sizes.map((n) => {
      const s = median(apply.sqlite.get(n)!);
      const e = median(apply.etcd.get(n)!);
      return [`apply ${n} to running`, ms(s), ms(e), (e / s).toFixed(2)];
    });
    for (const p of [50, 99]) {
      const s = percentile(watch.sqlite, p);
      const e = percentile(watch.etcd, p);
      rows.push([`watch latency p${p}`, ms(s, 1), ms(e, 1), (e / s).toFixed(2)]);
    }
    if (flags.json) process.stdout.write(`${JSON.stringify({ apply: Object.fromEntries(BACKENDS.map((b) => [b, Object.fromEntries(apply[b])])), watch }, null, 1)}\n`);
    else process.stdout.write(`\n${table(["", "SQLite", "etcd (3 members)", "etcd/SQLite"], rows)}\n`);
  } finally {
    await etcd.destroy();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    etcd?.destroyNow();
    fatal((error as Error).stack ?? String(error));
  },
);
