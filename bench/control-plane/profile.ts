/**
 * Where the control plane's time goes during a benchmark run: Pith's own Prometheus histograms
 * (reconcile and API request durations, read in-process) and, with --profile, a V8 CPU profile of
 * the whole process summarised by area and by function.
 */
import { apiRequestSeconds, metricsRegistry, reconcileSeconds } from "../../src/shared/metrics.ts";
import { startCpuProfile as startProfiler, type CallFrame, type ProfileSummary } from "../cpu-profile.ts";

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

export type { ProfileSummary };

/** A running CPU profile of this process; stop() writes it to `file` and summarises it. */
export async function startCpuProfile(file: string): Promise<{ stop(): Promise<ProfileSummary> }> {
  const profiler = await startProfiler(500, { area, selfTop: 15 });
  return { stop: () => profiler.stop(file) };
}

function area(frame: CallFrame): string {
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
