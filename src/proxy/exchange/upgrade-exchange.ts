import type { Duplex } from "node:stream";
import type { Backend } from "../routes/route.ts";
import { classifyFailure, type FailureKind, UpstreamTimeout } from "../upstream/upstream-errors.ts";
import type { Upstream } from "../upstream/upstream.ts";
import { CLIENT_CLOSED } from "./access-log.ts";
import { Exchange, type ExchangeConfig, isIdempotent } from "./exchange.ts";
import { type ForwardRequest, requestHead } from "./forward-headers.ts";
import { type ProxyErrorResponse, writeErrorToSocket } from "./proxy-responses.ts";
import type { ServiceState } from "./service-state.ts";

const EMPTY = Buffer.alloc(0);

/**
 * An HTTP Upgrade (WebSocket or other): a TCP connection to the machine, the request head written
 * with the forwarded headers, then bytes piped both ways until either side closes. Nothing is
 * written before the connection is up, so a refused connect is retried like a GET. The machine's
 * response head gets X-Request-Id; its status (101 normally) is what the access log records, once
 * the tunnel has closed. The tunnel counts as one request in flight on its machine while open.
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
    conn.once("data", (chunk: Buffer) => {
      answered = true;
      clearTimeout(answerTimer);
      this.#status = statusOf(chunk);
      client.write(withRequestId(chunk, this.forward.requestId));
      conn.pipe(client);
    });
    conn.once("close", () => {
      clearTimeout(answerTimer);
      if (answered) closeAfterFlush(client);
      else if (client.destroyed || !client.writable) this.#status = CLIENT_CLOSED; // the client left first
      else this.#noAnswer(failure ?? "reset");
      this.#sideClosed();
    });
    conn.write(requestHead(this.method, this.path, this.forward));
    if (this.#head.length > 0) conn.write(this.#head);
    this.#head = EMPTY;
    client.pipe(conn);
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
