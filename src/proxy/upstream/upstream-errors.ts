/**
 * How a connection to a machine fails, as the proxy tells failures apart: the time limits it
 * enforces itself, and the kinds it counts, retries on and names in its answers.
 */

/** A time limit the proxy enforces on an upstream connection or request. */
export class UpstreamTimeout extends Error {
  constructor(
    readonly code: "ECONNECTTIMEOUT" | "EUPSTREAMTIMEOUT",
    message: string,
  ) {
    super(message);
  }
}

/** How an attempt to reach a machine failed (the `kind` label of pith_proxy_upstream_errors_total). */
export type FailureKind = "refused" | "connect_timeout" | "connect_error" | "reset" | "timeout" | "error";

/** `connected`: the TCP connection to the machine was established (or reused) before the error. */
export function classifyFailure(error: unknown, connected: boolean): FailureKind {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "ECONNECTTIMEOUT") return "connect_timeout";
  if (code === "EUPSTREAMTIMEOUT") return "timeout";
  if (!connected) return code === "ECONNREFUSED" ? "refused" : "connect_error";
  return code === "ECONNRESET" || code === "EPIPE" ? "reset" : "error";
}

/** The machine never got the request: another machine may take it, whatever its method. */
export const isConnectFailure = (kind: FailureKind): boolean => kind === "refused" || kind === "connect_timeout" || kind === "connect_error";
