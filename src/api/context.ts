import type { SecretBox } from "../secrets/secret-box.ts";
import type { Store } from "../store/store.ts";
import type { StreamQuota } from "./stream-quota.ts";
import type { OpenStreams } from "./streaming.ts";

/** What route handlers work with. */
export interface ApiContext {
  store: Store;
  /** Where a machine's console log is, or undefined if the machine is unknown. */
  consoleLogPath: ((machineName: string) => Promise<string | undefined>) | undefined;
  /** Interval of watch BOOKMARK lines and SSE pings. */
  heartbeatMs: number;
  /** Interval at which a followed console log is polled. */
  consolePollMs: number;
  streams: OpenStreams;
  /** Open streams per client (watches, console follows), bounded. */
  streamQuota: StreamQuota;
  /** Where proxies' load reports go (the autoscaler); undefined: the route answers 404. */
  onLoadReport: ((service: string, load: { inFlight: number; waiting: number }) => void) | undefined;
  /** Seals and opens Secret values; undefined: Secrets cannot be written or opened. */
  secrets: SecretBox | undefined;
}
