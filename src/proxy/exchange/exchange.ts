import { UNHEALTHY_MS } from "../routes/balancer.ts";
import type { Backend } from "../routes/route.ts";
import { type FailureKind, isConnectFailure } from "../upstream/upstream-errors.ts";
import type { Upstream } from "../upstream/upstream.ts";
import { type AccessLog, roundMs } from "./access-log.ts";
import type { ForwardRequest } from "./forward-headers.ts";
import type { ProxyErrorResponse } from "./proxy-responses.ts";
import type { ServiceState, Waiter } from "./service-state.ts";

export interface ExchangeConfig {
  holdTimeoutMs: number;
  upstreamTimeoutMs: number;
  connectTimeoutMs: number;
  maxAttempts: number;
  accessLog: AccessLog | undefined;
}

/** Methods a retry cannot make happen twice (RFC 9110 9.2.2), as far as the proxy retries. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);
export const isIdempotent = (method: string): boolean => IDEMPOTENT.has(method);

/**
 * One client request's way through the proxy, whatever its protocol: pick the least busy backend,
 * try it; on a connection failure retry another (when that is safe), hold while the service has
 * no backend, and answer 502/503/504 itself when it must. Subclasses do the protocol (HTTP
 * request, or upgrade tunnel); this class does the decisions, the bookkeeping and the log.
 */
export abstract class Exchange implements Waiter {
  heldSince = 0;
  heldMs = 0;
  holdTimer: NodeJS.Timeout | undefined = undefined;
  /** Attempts started; an attempt's callbacks compare it to ignore a superseded attempt. */
  attempts = 0;
  /** A response (proxied or the proxy's own) has begun, or the client left: nothing more to decide. */
  done = false;
  /** The machine of the latest attempt. */
  machine: string | undefined;
  /** performance.now() at the request's arrival (its wall-clock time for the log is timeOrigin + this). */
  readonly #started = performance.now();
  #current: Backend | undefined;
  /** Backends that failed for this request: not tried again by it. */
  #excluded: Set<Backend> | undefined;
  #lastFailure: string | undefined;
  #recorded = false;

  constructor(
    protected readonly config: ExchangeConfig,
    protected readonly state: ServiceState,
    readonly method: string,
    readonly path: string,
    protected readonly forward: ForwardRequest,
  ) {}

  /** Starts the attempt on `backend`; reports its end with endAttempt() or attemptFailed(). */
  protected abstract attempt(backend: Backend, upstream: Upstream): void;
  /** Sends the proxy's own error response. */
  protected abstract respond(error: ProxyErrorResponse): void;
  /** Another attempt cannot do harm: an idempotent method and no request body byte sent yet. */
  protected abstract mayRetry(): boolean;

  dispatch(): void {
    if (this.done) return;
    const backend = this.state.pick(this.#excluded);
    if (backend) {
      this.attempts++;
      this.#current = backend;
      this.machine = backend.machine;
      this.state.attemptStarted(backend);
      this.attempt(backend, this.state.upstream(backend));
      return;
    }
    if (!this.state.route) {
      this.routeGone();
      return;
    }
    // A cold start (nothing tried yet), or every backend failed and a retry is safe: wait for one.
    if (this.attempts === 0 || this.mayRetry()) this.state.hold(this);
    else this.#unreachable();
  }

  holdExpired(): void {
    const seconds = Math.round(this.config.holdTimeoutMs / 100) / 10;
    const last = this.#lastFailure ? `; last failure: ${this.#lastFailure}` : "";
    this.fail({
      status: 503,
      code: "NoReadyMachine",
      message: `service ${this.state.name} has no ready machine: none became ready within ${seconds} s${last}; try again shortly`,
      retryAfter: 5,
    });
  }

  routeGone(): void {
    this.fail({ status: 503, code: "ServiceGone", message: `service ${this.state.name} was deleted while the request waited for it`, retryAfter: 5 });
  }

  /** The current attempt is over (its response ended, or it failed before one): the backend's count drops. */
  protected endAttempt(): void {
    const backend = this.#current;
    if (!backend) return;
    this.#current = undefined;
    this.state.attemptEnded(backend);
  }

  /** The current attempt failed before any response byte: retry, hold, or answer 502/504. */
  protected attemptFailed(kind: FailureKind, error: unknown): void {
    const backend = this.#current;
    this.endAttempt();
    this.state.metrics.upstreamError(kind);
    const connectFailed = isConnectFailure(kind);
    if (backend && connectFailed) this.state.markUnhealthy(backend, UNHEALTHY_MS);
    this.#lastFailure = describeFailure(kind, error, this.machine);
    if (this.done) return;
    if (kind === "timeout") {
      this.fail({
        status: 504,
        code: "UpstreamTimeout",
        message: `machine ${this.machine} of service ${this.state.name} sent no response for ${this.config.upstreamTimeoutMs} ms`,
      });
      return;
    }
    if ((connectFailed || kind === "reset") && this.mayRetry() && this.attempts < this.config.maxAttempts) {
      if (backend) (this.#excluded ??= new Set()).add(backend);
      this.dispatch();
      return;
    }
    this.#unreachable();
  }

  protected fail(error: ProxyErrorResponse): void {
    if (this.done) return;
    this.done = true;
    this.state.unhold(this);
    this.respond(error);
  }

  /** Counts the request and writes its access log entry, once. */
  protected record(status: number): void {
    if (this.#recorded) return;
    this.#recorded = true;
    const ms = performance.now() - this.#started;
    this.state.metrics.request(status, ms / 1000);
    this.config.accessLog?.({
      time: new Date(performance.timeOrigin + this.#started).toISOString(),
      requestId: this.forward.requestId,
      method: this.method,
      host: this.forward.host ?? "",
      path: this.path,
      status,
      durationMs: roundMs(ms),
      service: this.state.name,
      machine: this.machine,
      attempts: this.attempts,
      heldMs: roundMs(this.heldMs),
    });
  }

  #unreachable(): void {
    const tries = this.attempts > 1 ? ` (${this.attempts} attempts)` : "";
    this.fail({
      status: 502,
      code: "UpstreamUnreachable",
      message: `service ${this.state.name}: ${this.#lastFailure ?? "no machine could take the request"}${tries}`,
    });
  }
}

function describeFailure(kind: FailureKind, error: unknown, machine: string | undefined): string {
  const detail = (error as { code?: unknown; message?: unknown } | null) ?? {};
  const code = typeof detail.code === "string" ? detail.code : typeof detail.message === "string" ? detail.message : String(error);
  return `machine ${machine} ${FAILURE_TEXT[kind]} (${code})`;
}

const FAILURE_TEXT: Record<FailureKind, string> = {
  refused: "refused the connection",
  connect_timeout: "did not accept the connection in time",
  connect_error: "could not be connected to",
  reset: "closed the connection before responding",
  timeout: "sent no response in time",
  error: "failed",
};
