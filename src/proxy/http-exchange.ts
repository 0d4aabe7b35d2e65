import { type ClientRequest, type IncomingMessage, request, type ServerResponse } from "node:http";
import { CLIENT_CLOSED } from "./access-log.ts";
import { classifyFailure, Exchange, type ExchangeConfig, isIdempotent, UpstreamTimeout } from "./exchange.ts";
import { type ForwardRequest, responseHeaders } from "./forward-headers.ts";
import { type ProxyErrorResponse, sendError } from "./proxy-responses.ts";
import type { Backend } from "./route.ts";
import type { ServiceState } from "./service-state.ts";
import type { Upstream } from "./upstream.ts";

const ignore = (): void => undefined;

/**
 * A plain HTTP request: forwarded on the backend's keep-alive pool, the response streamed back.
 * A request body is streamed only once the connection to the machine is up, so a refused or
 * timed-out connect leaves it unread and another machine can still take the request.
 */
export class HttpExchange extends Exchange {
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  #upstreamReq: ClientRequest | undefined;
  #upstreamRes: IncomingMessage | undefined;
  #bodyStarted = false;
  #responded = false;

  constructor(config: ExchangeConfig, state: ServiceState, req: IncomingMessage, res: ServerResponse, forward: ForwardRequest) {
    super(config, state, req.method ?? "GET", req.url ?? "/", forward);
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
    const n = this.attempts;
    let upstreamReq: ClientRequest;
    try {
      upstreamReq = request({
        agent: upstream.agent,
        host: upstream.hostname,
        port: upstream.port,
        method: this.method,
        path: this.path,
        headers: this.forward.headers,
      });
    } catch (error) {
      this.endAttempt();
      this.fail({ status: 400, code: "BadRequest", message: `the request cannot be forwarded: ${(error as Error).message}` });
      return;
    }
    this.#upstreamReq = upstreamReq;
    let connected = false;
    let connectTimer: NodeJS.Timeout | undefined;
    const onConnect = (): void => {
      clearTimeout(connectTimer);
      connected = true;
      this.#sendBody(upstreamReq);
    };
    upstreamReq.once("socket", (socket) => {
      if (!upstream.isConnecting(socket)) {
        onConnect(); // a kept-alive connection
        return;
      }
      const ms = this.config.connectTimeoutMs;
      connectTimer = setTimeout(() => upstreamReq.destroy(new UpstreamTimeout("ECONNECTTIMEOUT", `not connected within ${ms} ms`)), ms);
      socket.once("connect", onConnect);
    });
    // Armed once connected: the machine may take this long between two reads (e.g. to its response head).
    upstreamReq.setTimeout(this.config.upstreamTimeoutMs, () =>
      upstreamReq.destroy(new UpstreamTimeout("EUPSTREAMTIMEOUT", `nothing received for ${this.config.upstreamTimeoutMs} ms`)),
    );
    upstreamReq.once("close", () => clearTimeout(connectTimer));
    upstreamReq.once("response", (upstreamRes) => this.#response(upstreamRes));
    upstreamReq.on("error", (error) => {
      clearTimeout(connectTimer);
      if (n !== this.attempts || this.#responded) return; // superseded, or the response pipeline handles it
      if (this.done) this.endAttempt();
      else this.attemptFailed(classifyFailure(error, connected), error);
    });
    if (!this.forward.hasBody) upstreamReq.end();
  }

  #sendBody(upstreamReq: ClientRequest): void {
    if (!this.forward.hasBody || this.done || upstreamReq !== this.#upstreamReq) return;
    this.#bodyStarted = true;
    this.#req.pipe(upstreamReq);
  }

  #response(upstreamRes: IncomingMessage): void {
    this.#responded = true;
    if (this.done) {
      upstreamRes.destroy(); // the client left
      this.endAttempt();
      return;
    }
    const res = this.#res;
    try {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, responseHeaders(upstreamRes.rawHeaders, this.forward.requestId));
    } catch (error) {
      upstreamRes.destroy();
      this.endAttempt();
      this.state.metrics.upstreamError("error");
      this.fail({ status: 502, code: "BadUpstreamResponse", message: `machine ${this.machine} sent a response that cannot be forwarded: ${(error as Error).message}` });
      return;
    }
    this.done = true;
    this.#upstreamRes = upstreamRes;
    // pipe, not stream.pipeline: pipeline makes (and aborts) an AbortController per call, a tenth of the proxy's CPU.
    upstreamRes.on("error", ignore); // 'close' follows
    upstreamRes.once("close", () => {
      if (!upstreamRes.complete) res.destroy(); // the machine cut the body short: so does the client's response
      this.endAttempt();
    });
    upstreamRes.pipe(res);
  }

  /** The response ended or the connection closed: log it; if it did not end, the client left. */
  #closed(): void {
    if (!this.done) {
      this.done = true;
      this.state.unhold(this);
      this.#upstreamReq?.destroy();
      this.endAttempt();
    } else if (!this.#res.writableFinished) {
      this.#upstreamRes?.destroy(); // left mid-response: stop reading it from the machine
    }
    this.record(this.#res.headersSent ? this.#res.statusCode : CLIENT_CLOSED);
  }
}
