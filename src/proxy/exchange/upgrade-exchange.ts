import type { Duplex } from "node:stream";
import type { Backend } from "../routes/route.ts";
import { classifyFailure, type FailureKind, UpstreamTimeout } from "../upstream/upstream-errors.ts";
import type { Upstream } from "../upstream/upstream.ts";
import { CLIENT_CLOSED } from "./access-log.ts";
import { Exchange, type ExchangeConfig, isIdempotent } from "./exchange.ts";
import { type ForwardRequest, requestHead } from "./forward-headers.ts";
import { type ProxyErrorResponse, writeErrorToSocket } from "./proxy-responses.ts";
import type { ServiceState } from "./service-state.ts";

const EMPTY: Buffer = Buffer.alloc(0);
/** Longer than any status line a machine sends; past it, the answer is taken as it is. */
const MAX_STATUS_LINE = 1024;

/**
 * An HTTP Upgrade (WebSocket or other): a TCP connection to the machine, the request head written
 * with the forwarded headers, then, once the machine answers 101, bytes piped both ways until
 * either side closes. Nothing is written before the connection is up, so a refused connect is
 * retried like a GET. The machine's response head gets X-Request-Id; its status is what the access
 * log records, once the tunnel has closed. The tunnel counts as one request in flight on its
 * machine while open.
 *
 * Only a 101 makes a tunnel (as nginx and HAProxy do). A machine that refuses the upgrade (any
 * other answer) gets nothing more from the client: its response is relayed, the connection to it
 * ended, and the client's closed once the machine has closed. Otherwise the client's next
 * requests would reach the machine raw, past the proxy's headers, Host check and access log.
 */
export class UpgradeExchange extends Exchange {
  readonly #client: Duplex;
  #head: Buffer;
  #upstream: Duplex | undefined;
  #status = CLIENT_CLOSED;
  /** Sides of the tunnel still open (0 before it exists). */
  #open = 0;

  constructor(config: ExchangeConfig, state: ServiceState, method: string, target: string, client: Duplex, head: Buffer, forward: ForwardRequest) {
    super(config, state, method, target, forward);
    this.#client = client;
    this.#head = head;
    client.once("close", () => this.#clientClosed());
  }

  protected mayRetry(): boolean {
    return isIdempotent(this.method);
  }

  protected respond(error: ProxyErrorResponse): void {
    this.#status = error.status;
    writeErrorToSocket(this.#client, error, this.forward.requestId);
  }

  protected attempt(_backend: Backend, upstream: Upstream): void {
    const n = this.attempts;
    const conn = upstream.connectTunnel();
    this.#upstream = conn;
    const ms = this.config.connectTimeoutMs;
    const timer = setTimeout(() => conn.destroy(new UpstreamTimeout("ECONNECTTIMEOUT", `not connected within ${ms} ms`)), ms);
    const onError = (error: Error): void => {
      clearTimeout(timer);
      if (n !== this.attempts) return;
      if (this.done) this.endAttempt();
      else this.attemptFailed(classifyFailure(error, false), error);
    };
    conn.once("error", onError);
    conn.once("close", () => clearTimeout(timer));
    conn.once("connect", () => {
      clearTimeout(timer);
      conn.removeListener("error", onError);
      if (this.done) {
        conn.destroy();
        this.endAttempt();
        return;
      }
      this.#tunnel(conn);
    });
  }

  #tunnel(conn: Duplex): void {
    this.done = true;
    this.#open = 2;
    const client = this.#client;
    let answered = false;
    let failure: FailureKind | undefined;
    conn.on("error", (error) => {
      if (!answered) failure ??= classifyFailure(error, true);
    });
    const ms = this.config.upstreamTimeoutMs;
    const answerTimer = setTimeout(() => conn.destroy(new UpstreamTimeout("EUPSTREAMTIMEOUT", `nothing received for ${ms} ms`)), ms);
    let first: Buffer = EMPTY;
    const onFirst = (chunk: Buffer): void => {
      first = first.length === 0 ? chunk : Buffer.concat([first, chunk]);
      // The status line whole (or more than any status line): then it is known what this is.
      if (first.indexOf("\r\n") < 0 && first.length < MAX_STATUS_LINE) return;
      conn.removeListener("data", onFirst);
      answered = true;
      clearTimeout(answerTimer);
      this.#status = statusOf(first);
      client.write(withRequestId(first, this.forward.requestId));
      conn.pipe(client);
      if (this.#status === 101) {
        if (this.#head.length > 0) conn.write(this.#head);
        this.#head = EMPTY;
        client.pipe(conn);
        return;
      }
      // Refused: no more of the client's bytes go to the machine.
      this.#head = EMPTY;
      client.pause();
      conn.end();
      const closeTimer = setTimeout(() => conn.destroy(), ms);
      conn.once("close", () => clearTimeout(closeTimer));
    };
    conn.on("data", onFirst);
    conn.once("close", () => {
      clearTimeout(answerTimer);
      if (answered) closeAfterFlush(client);
      else if (client.destroyed || !client.writable) this.#status = CLIENT_CLOSED; // the client left first
      else this.#noAnswer(failure ?? "reset");
      this.#sideClosed();
    });
    conn.write(requestHead(this.method, this.path, this.forward));
  }

  /** The machine closed (or timed out) before answering the upgrade. */
  #noAnswer(kind: FailureKind): void {
    this.state.metrics.upstreamError(kind);
    const timeout = kind === "timeout";
    this.respond({
      status: timeout ? 504 : 502,
      code: timeout ? "UpstreamTimeout" : "UpstreamUnreachable",
      message: `machine ${this.machine} of service ${this.state.name} ${timeout ? "did not answer the upgrade in time" : "closed the connection before answering the upgrade"}`,
    });
  }

  #clientClosed(): void {
    if (!this.done) {
      // Left while held or connecting.
      this.done = true;
      this.state.unhold(this);
      this.#upstream?.destroy();
      this.endAttempt();
      this.record(CLIENT_CLOSED);
      return;
    }
    if (this.#open === 0) {
      this.record(this.#status); // the proxy's own error answer was sent
      return;
    }
    if (this.#upstream) closeAfterFlush(this.#upstream);
    this.#sideClosed();
  }

  #sideClosed(): void {
    if (--this.#open > 0) return;
    this.endAttempt();
    this.record(this.#status);
  }
}

/** Ends our side once what is queued is written, then lets go (the peer that closed reads no more). */
function closeAfterFlush(stream: Duplex): void {
  if (stream.destroyed) return;
  stream.end(() => stream.destroy());
}

/** The status code of a response head's first bytes, or 502 if they are not one. */
function statusOf(chunk: Buffer): number {
  if (chunk.length < 12 || chunk.toString("latin1", 0, 5) !== "HTTP/") return 502;
  const status = Number(chunk.toString("latin1", 9, 12));
  return Number.isInteger(status) ? status : 502;
}

/** The machine's response head with X-Request-Id added after the status line (unless it has one). */
function withRequestId(chunk: Buffer, requestId: string): Buffer {
  const lineEnd = chunk.indexOf("\r\n");
  if (lineEnd < 0 || chunk.toString("latin1", 0, 5) !== "HTTP/") return chunk;
  const headEnd = chunk.indexOf("\r\n\r\n");
  const head = chunk.toString("latin1", 0, headEnd < 0 ? chunk.length : headEnd).toLowerCase();
  if (head.includes("\r\nx-request-id:")) return chunk;
  return Buffer.concat([chunk.subarray(0, lineEnd + 2), Buffer.from(`X-Request-Id: ${requestId}\r\n`, "latin1"), chunk.subarray(lineEnd + 2)]);
}
