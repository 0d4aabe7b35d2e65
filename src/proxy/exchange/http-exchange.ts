import type { Backend } from "../routes/route.ts";
import { type ResponseHead, ResponseParseError } from "../upstream/response-parser.ts";
import type { UpstreamConnection, UpstreamUser } from "../upstream/upstream-connection.ts";
import { classifyFailure } from "../upstream/upstream-errors.ts";
import type { Lease, Upstream } from "../upstream/upstream.ts";
import { CLIENT_CLOSED } from "./access-log.ts";
import type { ClientRequest, ClientResponse } from "./client-side.ts";
import { Exchange, type ExchangeConfig, isIdempotent } from "./exchange.ts";
import { type ForwardRequest, requestHead, responseHeaders } from "./forward-headers.ts";
import { type ProxyErrorResponse, sendError } from "./proxy-responses.ts";
import type { ServiceState } from "./service-state.ts";

/** What http.request refused to put on a request line (node's own check): the parser let nothing else through. */
const UNSAFE_PATH = /[^\u0021-\u00ff]/;

/**
 * A plain HTTP request: its head written on a kept-alive connection of the backend's pool, the
 * response parsed there and streamed back through the client's response. A request body is
 * streamed only once a connection to the machine is up, so a refused or timed-out connect leaves
 * it unread and another machine can still take the request.
 */
export class HttpExchange extends Exchange implements Lease, UpstreamUser {
  readonly #req: ClientRequest;
  readonly #res: ClientResponse;
  #upstream: Upstream | undefined;
  #connection: UpstreamConnection | undefined;
  #bodyStarted = false;
  #bodyDone = false;
  /** The response head went to the client: failures now cut the response. */
  #responded = false;
  /** The last body chunk of a read, held so that a response ending in the same read goes out in one write with its end. */
  #held: Buffer | undefined;
  /** Reading from the machine is paused until the client's response drains. */
  #paused = false;

  constructor(config: ExchangeConfig, state: ServiceState, req: ClientRequest, res: ClientResponse, forward: ForwardRequest) {
    super(config, state, req.method, req.target, forward);
    this.#req = req;
    this.#res = res;
    res.once("close", () => this.#closed());
  }

  protected mayRetry(): boolean {
    return !this.#bodyStarted && isIdempotent(this.method);
  }

  protected respond(error: ProxyErrorResponse): void {
    sendError(this.#res, error, this.forward.requestId);
  }

  protected attempt(_backend: Backend, upstream: Upstream): void {
    if (UNSAFE_PATH.test(this.path)) {
      this.endAttempt();
      this.fail({ status: 400, code: "BadRequest", message: "the request cannot be forwarded: its path has characters a request line cannot carry" });
      return;
    }
    this.#upstream = upstream;
    const connection = upstream.acquire(this);
    if (connection) this.#send(connection);
  }

  onConnection(connection: UpstreamConnection): void {
    if (this.done) {
      connection.destroy(); // not expected: a leaving client cancels its lease
      return;
    }
    this.#send(connection);
  }

  onConnectFailure(error: Error): void {
    if (this.done) this.endAttempt();
    else this.attemptFailed(classifyFailure(error, false), error);
  }

  #send(connection: UpstreamConnection): void {
    this.#connection = connection;
    const forward = this.forward;
    connection.send(this, this.method, requestHead(this.method, this.path, forward));
    if (forward.hasBody) this.#sendBody(connection, forward.chunked);
  }

  #sendBody(connection: UpstreamConnection, chunked: boolean): void {
    this.#bodyStarted = true;
    const req = this.#req;
    const resume = (): void => req.resume();
    const onData = (chunk: Buffer): void => {
      if (this.#connection !== connection || chunk.length === 0) return;
      let ok: boolean;
      if (chunked) {
        connection.write(`${chunk.length.toString(16)}\r\n`);
        connection.write(chunk);
        ok = connection.write("\r\n");
      } else ok = connection.write(chunk);
      if (!ok) {
        req.pause();
        connection.socket.once("drain", resume);
      }
    };
    req.readBody(onData, () => {
      if (this.#connection !== connection) return;
      if (chunked) connection.write("0\r\n\r\n");
      this.#bodyDone = true;
    });
  }

  onResponseHead(head: ResponseHead): void {
    if (this.done) return; // the proxy answered already (cannot happen while the connection is ours)
    try {
      const res = this.#res;
      // The machine's field lines go verbatim when the client side can send them so and none needs an edit.
      const { fields, headers } = responseHeaders(head.rawHeaders, this.forward.requestId, res.writeHeadWithFields ? head.fields : undefined);
      if (fields !== undefined && res.writeHeadWithFields) res.writeHeadWithFields(head.status, head.reason, fields, head.rawHeaders, headers);
      else res.writeHead(head.status, head.reason, headers);
    } catch (error) {
      this.#connection?.destroy();
      this.#connection = undefined;
      this.#badResponse(error as Error);
      return;
    }
    this.done = true;
    this.#responded = true;
  }

  onResponseBody(chunk: Buffer): void {
    if (this.#held) this.#write(this.#held);
    this.#held = chunk;
  }

  onResponseRead(): void {
    const held = this.#held;
    if (!held) return;
    this.#held = undefined;
    this.#write(held);
  }

  onResponseEnd(): void {
    const held = this.#held;
    this.#held = undefined;
    const connection = this.#connection;
    this.#connection = undefined;
    if (connection) {
      // The machine answered before reading the whole body: what is left would be read as the next request.
      if (this.#bodyStarted && !this.#bodyDone) connection.destroy();
      else if (this.#paused) connection.resume();
    }
    this.#paused = false;
    this.endAttempt();
    this.#res.end(held);
  }

  onUpstreamFailure(error: Error, connected: boolean): void {
    this.#connection = undefined;
    // The rest of a body the machine will never read: let the server drop it, or the client's connection stalls.
    if (this.#bodyStarted && !this.#bodyDone) this.#req.discardBody();
    if (this.#responded) {
      this.#res.destroy(); // the machine cut the body short: so does the client's response
      this.endAttempt();
    } else if (this.done) this.endAttempt();
    else if (error instanceof ResponseParseError) this.#badResponse(error);
    else this.attemptFailed(classifyFailure(error, connected), error);
  }

  /** Not retried: the machine got the request and may have acted on it. */
  #badResponse(error: Error): void {
    this.endAttempt();
    this.state.metrics.upstreamError("error");
    this.fail({ status: 502, code: "BadUpstreamResponse", message: `machine ${this.machine} sent a response that cannot be forwarded: ${error.message}` });
  }

  #write(chunk: Buffer): void {
    if (this.#res.write(chunk) || this.#paused) return;
    const connection = this.#connection;
    if (!connection) return;
    this.#paused = true;
    connection.pause();
    this.#res.once("drain", () => {
      if (!this.#paused || this.#connection !== connection) return;
      this.#paused = false;
      connection.resume();
    });
  }

  /** The response ended or the connection closed: log it; if it did not end, the client left. */
  #closed(): void {
    if (!this.done) {
      this.done = true;
      this.state.unhold(this);
      this.#upstream?.cancel(this);
      this.#connection?.destroy();
      this.#connection = undefined;
      this.endAttempt();
    } else if (!this.#res.writableFinished && this.#connection) {
      this.#connection.destroy(); // left mid-response: stop reading it from the machine
      this.#connection = undefined;
      this.endAttempt();
    }
    this.record(this.#res.headersSent ? this.#res.statusCode : CLIENT_CLOSED);
  }
}
