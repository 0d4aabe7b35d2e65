/**
 * A V8 CPU profile of the Pith proxy process while it is under load, summarised by area (Pith's
 * proxy code, node's HTTP parser and streams, sockets, metrics, GC) and by function, self time and
 * (for Pith's own functions) inclusive time, with TypeScript line numbers from tsx's source maps.
 * Runs inside the profiled process (pith-proxy-process.ts), so the source maps are at hand.
 */
import { ROOT, startCpuProfile as startProfiler, type CallFrame, type CpuProfiler, type ProfileSummary } from "../cpu-profile.ts";

export type ProxyProfile = ProfileSummary;
export type { CpuProfiler };

export function startCpuProfile(intervalUs = 250): Promise<CpuProfiler> {
  return startProfiler(intervalUs, { area, selfTop: 20 });
}

function area(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (functionName === "(garbage collector)") return "GC";
  if (functionName === "(idle)") return "idle";
  if (functionName === "(program)") return "V8/native (program)";
  if (url.includes("/src/proxy/")) return "Pith proxy (src/proxy)";
  if (url.includes("prom-client")) return "metrics (prom-client)";
  if (url.includes(`${ROOT}/src/`)) return "Pith, other (src)";
  if (/node:(internal\/)?(_http|http)/.test(url)) return "node http (node:_http_*)";
  if (/node:internal\/streams|node:stream/.test(url)) return "node streams";
  if (/node:net|node:internal\/(stream_base_commons|net)/.test(url)) return "node net / sockets";
  if (/node:internal\/(timers|process\/task_queues)|node:timers|node:events|node:internal\/event_target/.test(url)) return "node timers, ticks, events";
  if (url === "") return `native ${functionName || "(anonymous)"}`;
  if (url.startsWith("node:")) return "node internals (other)";
  return "other";
}
