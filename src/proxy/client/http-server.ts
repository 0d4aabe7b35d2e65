import { Server, type Socket } from "node:net";
import { ClientConnection, type ClientLimits, type HttpHandlers } from "./client-connection.ts";

export type { ClientLimits, HttpHandlers } from "./client-connection.ts";
export type { IncomingRequest } from "./incoming-request.ts";
export type { OutgoingResponse } from "./outgoing-response.ts";

export const DEFAULT_CLIENT_LIMITS: ClientLimits = {
  headTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  clientTimeoutMs: 60_000,
};

/**
 * Pith's HTTP/1.1 server on raw `net` sockets: the proxy's client side, in place of node's
 * http.Server (whose request and response objects cost as much CPU per request as the rest of the
 * proxy). Parsing and framing are client/request-parser.ts and outgoing-response.ts; the rules of
 * a connection (pipelining, 100-continue, keep-alive, time limits) are client-connection.ts. One
 * sweep checks every connection's deadline, rather than a timer per connection.
 */
export class HttpServer extends Server {
  readonly #connections = new Set<ClientConnection>();
  /** Upgraded sockets: the handlers' now, but still cut by closeAllConnections(). */
  readonly #tunnels = new Set<Socket>();
  readonly #limits: ClientLimits;
  #sweep: NodeJS.Timeout | undefined;

  constructor(handlers: HttpHandlers, limits: Partial<ClientLimits> = {}) {
    super({ allowHalfOpen: true, noDelay: true });
    const all: ClientLimits = { ...DEFAULT_CLIENT_LIMITS, ...limits };
    this.#limits = all;
    const tracked: HttpHandlers = {
      onRequest: handlers.onRequest,
      onClientError: handlers.onClientError,
      onUpgrade: (req, socket, head) => {
        this.#tunnels.add(socket);
        socket.once("close", () => this.#tunnels.delete(socket));
        handlers.onUpgrade(req, socket, head);
      },
    };
    this.on("connection", (socket: Socket) => {
      const connection = new ClientConnection(socket, tracked, all);
      this.#connections.add(connection);
      socket.once("close", () => this.#connections.delete(connection));
    });
    this.on("listening", () => this.#startSweep());
    this.on("close", () => clearInterval(this.#sweep));
  }

  /** Cuts every connection, upgraded ones too. */
  closeAllConnections(): void {
    for (const connection of this.#connections) connection.socket.destroy();
    for (const socket of this.#tunnels) socket.destroy();
  }

  /** Closes idle kept-alive connections now and the others after their current response. */
  closeIdleConnections(): void {
    for (const connection of this.#connections) connection.drain();
  }

  #startSweep(): void {
    clearInterval(this.#sweep);
    const shortest = Math.min(this.#limits.headTimeoutMs, this.#limits.keepAliveTimeoutMs, this.#limits.clientTimeoutMs);
    const every = Math.min(1000, Math.max(10, Math.floor(shortest / 4)));
    this.#sweep = setInterval(() => {
      const now = performance.now();
      for (const connection of this.#connections) if (connection.expired(now)) connection.timedOut();
    }, every).unref();
  }
}
