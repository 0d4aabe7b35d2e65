/**
 * Where the control plane's time goes during a benchmark run: Pith's own Prometheus histograms
 * (reconcile and API request durations, read in-process) and, with --profile, a V8 CPU profile of
 * the whole process summarised by area and by function.
 */
import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { findSourceMap } from "node:module";
import { apiRequestSeconds, metricsRegistry, reconcileSeconds } from "../../src/shared/metrics.ts";
import { pithRoot } from "../../src/shared/paths.ts";

export interface TimeSpent {
  name: string;
  count: number;
  totalMs: number;
}

/** Reconciles and API requests since the last reset, by controller and by method + route, busiest first. */
export async function metricsSnapshot(): Promise<{ reconciles: TimeSpent[]; requests: TimeSpent[] }> {
  const fold = (values: { labels: Record<string, string | number | undefined>; value: number; metricName?: string }[], key: (l: Record<string, string | number | undefined>) => string): TimeSpent[] => {
    const byKey = new Map<string, TimeSpent>();
    for (const v of values) {
      const name = key(v.labels);
      const entry = byKey.get(name) ?? { name, count: 0, totalMs: 0 };
      if (v.metricName?.endsWith("_sum")) entry.totalMs += v.value * 1000;
      else if (v.metricName?.endsWith("_count")) entry.count += v.value;
      else continue;
      byKey.set(name, entry);
    }
    return [...byKey.values()].sort((a, b) => b.totalMs - a.totalMs);
  };
  const reconciles = fold((await reconcileSeconds.get()).values, (l) => String(l.controller));
  const requests = fold((await apiRequestSeconds.get()).values, (l) => `${l.method} ${l.route}`);
  return { reconciles, requests };
}

export const resetMetrics = (): void => metricsRegistry.resetMetrics();

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  byArea: { area: string; ms: number }[];
  selfTop: { fn: string; ms: number }[];
  inclusiveTop: { fn: string; ms: number }[];
}

/** A running CPU profile of this process; stop() writes it to `file` and summarises it. */
export async function startCpuProfile(file: string): Promise<{ stop(): Promise<ProfileSummary> }> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 500 });
  await session.post("Profiler.start");
  return {
    async stop() {
      const { profile } = (await session.post("Profiler.stop")) as unknown as { profile: CpuProfile };
      session.disconnect();
      await writeFile(file, JSON.stringify(profile));
      return summarise(profile, file);
    },
  };
}

const ROOT = pithRoot();

function area(frame: ProfileNode["callFrame"]): string {
  const { url, functionName } = frame;
  if (functionName === "(garbage collector)") return "GC";
  if (functionName === "(idle)") return "idle";
  if (functionName === "(program)") return "V8/native (program)";
  if (url.includes("better-sqlite3") || url.includes("/src/store/")) return "store (SQLite + JSON)";
  if (url.includes("/src/api/")) return "API handlers (src/api)";
  if (/node_modules\/(fastify|@fastify|find-my-way|avvio|light-my-request|fast-json-stringify|fast-querystring|@sinclair|ajv)/.test(url)) return "fastify + validation";
  if (url.includes("/src/controller/")) return "controllers (src/controller)";
  if (url.includes("/src/agent/")) return "node agent (src/agent)";
  if (url.includes("/src/client/")) return "client (src/client)";
  if (url.includes("/src/hypervisor/")) return "hypervisor";
  if (url.includes("undici")) return "fetch (undici)";
  if (url.includes("prom-client")) return "metrics (prom-client)";
  if (/node:internal\/(http|_http|streams|net|stream_base)|node:_http|node:net|node:http/.test(url)) return "node http/net/streams";
  if (url.includes("/bench/")) return "benchmark itself";
  // better-sqlite3's Statement methods are native functions without a URL.
  if (url === "" && ["all", "run", "get", "pluck", "iterate", "exec"].includes(functionName)) return "SQLite native calls (better-sqlite3 all/run/get)";
  if (url === "") return `builtin ${functionName || "(anonymous)"}`;
  if (url.startsWith("node:")) return "node internals (other)";
  return "other";
}

/** `name file:line`, the line in the TypeScript source (tsx compiles each file to one line; its source maps say where). */
const label = (frame: ProfileNode["callFrame"]): string => {
  if (!frame.url) return `${frame.functionName || "(anonymous)"} (native)`;
  let line = frame.lineNumber + 1;
  try {
    const entry = findSourceMap(frame.url)?.findEntry(frame.lineNumber, frame.columnNumber) as { originalLine?: number } | undefined;
    if (entry?.originalLine !== undefined) line = entry.originalLine + 1;
  } catch {
    // no source map: the generated line it is
  }
  return `${frame.functionName || "(anonymous)"} ${frame.url.replace(/^file:\/\//, "").replace(`${ROOT}/`, "")}:${line}`;
};

function summarise(profile: CpuProfile, file: string): ProfileSummary {
  const totalMs = (profile.endTime - profile.startTime) / 1000;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const hits = new Map<number, number>();
  if (profile.samples) for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  else for (const n of profile.nodes) hits.set(n.id, n.hitCount ?? 0);
  const totalHits = [...hits.values()].reduce((a, b) => a + b, 0) || 1;
  const msPerHit = totalMs / totalHits;

  const areas = new Map<string, number>();
  const self = new Map<string, number>();
  for (const [id, count] of hits) {
    const node = byId.get(id);
    if (!node) continue;
    const a = area(node.callFrame);
    areas.set(a, (areas.get(a) ?? 0) + count * msPerHit);
    const key = label(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + count * msPerHit);
  }

  // Inclusive time per function, counting a function once per stack (recursion is not doubled).
  const inclusive = new Map<string, number>();
  const subtotal = new Map<number, number>();
  const total = (id: number): number => {
    const cached = subtotal.get(id);
    if (cached !== undefined) return cached;
    const node = byId.get(id)!;
    const sum = (hits.get(id) ?? 0) + (node.children ?? []).reduce((a, c) => a + total(c), 0);
    subtotal.set(id, sum);
    return sum;
  };
  const root = profile.nodes[0];
  if (root) {
    const stack: [number, Set<string>][] = [[root.id, new Set()]];
    while (stack.length > 0) {
      const [id, above] = stack.pop()!;
      const node = byId.get(id)!;
      const key = label(node.callFrame);
      const isPith = node.callFrame.url.includes(`${ROOT}/src/`);
      if (isPith && !above.has(key)) inclusive.set(key, (inclusive.get(key) ?? 0) + total(id) * msPerHit);
      const next = isPith ? new Set(above).add(key) : above;
      for (const child of node.children ?? []) stack.push([child, next]);
    }
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([fn, ms]) => ({ fn, ms: Math.round(ms) }));
  return {
    file,
    totalMs: Math.round(totalMs),
    byArea: [...areas.entries()].sort((a, b) => b[1] - a[1]).map(([area, ms]) => ({ area, ms: Math.round(ms) })),
    selfTop: top(self, 15),
    inclusiveTop: top(inclusive, 15),
  };
}
