/**
 * Watch-event latency: 10 PithClient watchers on Service; a writer updates
 * spec.env.T = performance.now() 300 times; each watcher records now - T on receipt. See bench/README.md.
 */
import { PithClient } from "../../src/client/index.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import { FAKE_IMAGE, lastLogs, log, registerFakeImage, startCluster, stopCluster } from "./cluster.ts";
import { median, ms, percentile, sleep, table, waitUntil } from "./stats.ts";

const WATCHERS = 10;
const WATCH_WRITES = 300;
const WATCH_GAP_MS = 5;

export interface WatchResult {
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

export async function watchLatency(): Promise<WatchResult> {
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

export function formatWatch(r: WatchResult): string {
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
