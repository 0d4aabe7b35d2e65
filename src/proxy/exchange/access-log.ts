/** One line of the proxy's access log: one per request (an upgraded connection logs when it closes). */
export interface AccessLogEntry {
  /** When the request arrived (ISO 8601). */
  time: string;
  requestId: string;
  method: string;
  host: string;
  path: string;
  /** The response status; 101 for a tunnel the machine accepted; 499 if the client left first. */
  status: number;
  durationMs: number;
  /** Undefined when no service matched the host. */
  service: string | undefined;
  /** The machine of the last attempt, if any. */
  machine: string | undefined;
  /** Connection attempts to machines (retries included). */
  attempts: number;
  /** Time spent held waiting for a ready machine. */
  heldMs: number;
}

export type AccessLog = (entry: AccessLogEntry) => void;

/** Status for a request whose client went away before a response started (as nginx logs it). */
export const CLIENT_CLOSED = 499;

export const roundMs = (ms: number): number => Math.round(ms * 1000) / 1000;
