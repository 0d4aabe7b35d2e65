import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Server } from "node:net";
import type { Duplex } from "node:stream";
import { type ClientLimits, DEFAULT_CLIENT_LIMITS, HttpServer } from "./client/http-server.ts";
import type { ClientRequest, ClientResponse } from "./exchange/client-side.ts";
import { type AccessLog, type AccessLogEntry, roundMs } from "./exchange/access-log.ts";
import type { ExchangeConfig } from "./exchange/exchange.ts";
import { type ForwardRequest, forwardRequest, newRequestId } from "./exchange/forward-headers.ts";
import { HttpExchange } from "./exchange/http-exchange.ts";
import { ServiceMetrics, UNROUTED } from "./exchange/proxy-metrics.ts";
import { type ProxyErrorResponse, sendError, writeErrorToSocket } from "./exchange/proxy-responses.ts";
import { type DemandListener, type ServiceLoad, ServiceState, type ServiceStateOptions } from "./exchange/service-state.ts";
import { UpgradeExchange } from "./exchange/upgrade-exchange.ts";
import type { Route, RouteSource } from "./routes/route.ts";
import { directConnector, type UpstreamConnector } from "./upstream/upstream-connector.ts";

const ignore = (): void => undefined;

export type { AccessLog, AccessLogEntry } from "./exchange/access-log.ts";
export type { DemandListener, ServiceLoad } from "./exchange/service-state.ts";
export type { UpstreamConnector, UpstreamTarget } from "./upstream/upstream-connector.ts";

export interface ProxyServerOptions {
  /** Host -> service -> ready machines; a RouteTable, or anything that answers the same way. */
  routes: RouteSource;
  /**
   * Told a service's load whenever the number of requests held for it changes (first of all when
   * a hold starts: the service has no ready machine and should get one). The proxy starts nothing
   * itself.
   */
  onDemand?: DemandListener;
  /** How long a request may wait for a ready machine before a 503; default 30 s. */
  holdTimeoutMs?: number;
  /** How long a machine may stay silent (before its response head, or between reads) before a 504 / cut; default 60 s. */
  upstreamTimeoutMs?: number;
  /** How long connecting to a machine may take before it counts as a failed connect (and is retried); default 3 s. */
  connectTimeoutMs?: number;
  /** Connection attempts per request, across machines; default 3. */
  maxAttempts?: number;
  /** Concurrent connections to one machine; default 256 (more requests queue in the proxy). */
  maxSocketsPerBackend?: number;
  /** How upstream connections (HTTP and upgrade tunnels) reach a machine; default directConnector (TCP to its address). */
  connector?: UpstreamConnector;
  /** One entry per request (default: none). Called synchronously: buffer, do not block. */
  accessLog?: AccessLog;
  /** Told about an onDemand callback that threw (default: console.error). */
  onError?: (error: unknown) => void;
  /**
   * What serves the clients: `pith`, Pith's own HTTP/1.1 server on raw sockets (client/, the
   * default), or `node`, node's http.Server (the earlier client side, kept for comparison).
   */
  clientServer?: ClientServerName;
  /** From a request's first byte to the end of its head, before a 408 (slowloris); default 10 s. Pith's server only. */
  headTimeoutMs?: number;
  /** How long a kept-alive client connection may stay idle; default 5 s. */
  keepAliveTimeoutMs?: number;
  /** How long a client may leave a body unsent or a response unread; default 60 s. Pith's server only. */
  clientTimeoutMs?: number;
}

export const CLIENT_SERVERS = ["pith", "node"] as const;
export type ClientServerName = (typeof CLIENT_SERVERS)[number];

export interface ProxyServer extends Server {
  /** Cuts every client connection (upgraded ones too with Pith's server). */
  closeAllConnections(): void;
  /** Per-service load, for autoscaling: services the proxy has seen requests for. */
  proxyLoad(): Record<string, ServiceLoad>;
  /** Listens on host:port (0: any free port); resolves with the port, or rejects if it cannot listen there. */
  listenOn(host: string, port: number): Promise<number>;
  /** Stops listening and cuts the connections still open; resolves once closed (at once if it never listened). */
  closeNow(): Promise<void>;
}

/**
 * The proxy's data path: routes each request by its Host header to a ready machine of the
 * service (fewest outstanding requests), holds it while the service has none (reporting demand),
 * retries safe requests on connection failures, and tunnels upgrades. Returns the server, not
 * listening yet.
 */
export function createProxyServer(options: ProxyServerOptions): ProxyServer {
  const { routes } = options;
  const config: ExchangeConfig = {
    holdTimeoutMs: options.holdTimeoutMs ?? 30_000,
    upstreamTimeoutMs: options.upstreamTimeoutMs ?? 60_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 3_000,
    maxAttempts: options.maxAttempts ?? 3,
    accessLog: options.accessLog,
  };
  const stateOptions: ServiceStateOptions = {
    holdTimeoutMs: config.holdTimeoutMs,
    maxSocketsPerBackend: options.maxSocketsPerBackend ?? 256,
    connector: options.connector ?? directConnector,
    connectTimeoutMs: config.connectTimeoutMs,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    onDemand: options.onDemand,
    onError: options.onError ?? ((error) => console.error("pith proxy: onDemand threw:", error)),
  };
  const states = new Map<string, ServiceState>();
  const unrouted = new ServiceMetrics(UNROUTED);

  const stateFor = (route: Route): ServiceState => {
    let state = states.get(route.service);
    if (!state) states.set(route.service, (state = new ServiceState(route.service, route, stateOptions)));
    else state.route = route;
    return state;
  };

  const unsubscribe = routes.onChange((service, route) => {
    const state = states.get(service);
    if (!state) return;
    state.routeChanged(route);
    if (!route && state.idle) {
      states.delete(service);
      state.close();
      state.metrics.remove();
    }
  });

  /** No service for this host: 404, counted and logged like any request. */
  const noRoute = (method: string, target: string, forward: ForwardRequest, send: (error: ProxyErrorResponse) => void): void => {
    const startedAt = Date.now();
    const started = performance.now();
    const error: ProxyErrorResponse = {
      status: 404,
      code: "NoRoute",
      message: forward.host === undefined ? "the request has no Host header to route by" : `no service serves host ${forward.host}`,
    };
    send(error);
    const ms = performance.now() - started;
    unrouted.request(404, ms / 1000);
    const entry: AccessLogEntry | undefined = config.accessLog && {
      time: new Date(startedAt).toISOString(),
      requestId: forward.requestId,
      method,
      host: forward.host ?? "",
      path: target,
      status: 404,
      durationMs: roundMs(ms),
      service: undefined,
      machine: undefined,
      attempts: 0,
      heldMs: 0,
    };
    if (entry) config.accessLog?.(entry);
  };

  const INTERNAL: ProxyErrorResponse = { status: 500, code: "ProxyError", message: "the proxy failed on this request; see its log" };

  const lookup = (forward: ForwardRequest, path: string): Route | undefined =>
    forward.host === undefined ? undefined : routes.lookup(forward.host, path);

  // A throw while handling one request would otherwise escape the server's event handler and end
  // the process, and every other request with it: that request alone gets a 500.
  const onRequest = (req: ClientRequest, res: ClientResponse): void => {
    try {
      const forward = forwardRequest(req, "http", false);
      const route = lookup(forward, req.target);
      if (!route) noRoute(req.method, req.target, forward, (error) => sendError(res, error, forward.requestId));
      else new HttpExchange(config, stateFor(route), req, res, forward).dispatch();
    } catch (e) {
      failRequest(e, () => sendError(res, INTERNAL, ""));
    }
  };

  const onUpgrade = (req: Pick<ClientRequest, "method" | "target" | "rawHeaders" | "remoteAddress">, socket: Duplex, head: Buffer): void => {
    socket.on("error", ignore); // a reset client: its 'close' is what matters
    try {
      const forward = forwardRequest(req, "http", true);
      const route = lookup(forward, req.target);
      if (!route) noRoute(req.method, req.target, forward, (error) => writeErrorToSocket(socket, error, forward.requestId));
      else new UpgradeExchange(config, stateFor(route), req.method, req.target, socket, head, forward).dispatch();
    } catch (e) {
      failRequest(e, () => writeErrorToSocket(socket, INTERNAL, ""));
    }
  };

  const limits: ClientLimits = {
    headTimeoutMs: options.headTimeoutMs ?? DEFAULT_CLIENT_LIMITS.headTimeoutMs,
    keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? DEFAULT_CLIENT_LIMITS.keepAliveTimeoutMs,
    clientTimeoutMs: options.clientTimeoutMs ?? DEFAULT_CLIENT_LIMITS.clientTimeoutMs,
  };
  const server: Server & { closeAllConnections(): void } =
    (options.clientServer ?? "pith") === "pith"
      ? new HttpServer(
          {
            onRequest,
            onUpgrade,
            onClientError: (socket, status, message) =>
              writeErrorToSocket(socket, { status, code: CLIENT_ERROR_CODES[status] ?? "BadRequest", message }, newRequestId()),
          },
          limits,
        )
      : nodeClientServer(onRequest, onUpgrade, limits);

  const failRequest = (e: unknown, answer: () => void): void => {
    process.stderr.write(`pith proxy: a request failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    try {
      answer();
    } catch {
      // The connection is beyond answering; it is closed by its own errors.
    }
  };

  server.on("close", () => {
    unsubscribe();
    unrouted.dispose();
    for (const state of states.values()) {
      state.close();
      state.metrics.dispose();
    }
  });

  return Object.assign(server, {
    proxyLoad(): Record<string, ServiceLoad> {
      const load: Record<string, ServiceLoad> = {};
      for (const [name, state] of states) load[name] = state.load();
      return load;
    },
    listenOn(host: string, port: number): Promise<number> {
      return new Promise<number>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
      });
    },
    closeNow(): Promise<void> {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  });
}

/** The proxy's error codes for requests its HTTP server refuses, by status. */
const CLIENT_ERROR_CODES: Record<number, string> = {
  400: "BadRequest",
  405: "MethodNotAllowed",
  408: "RequestTimeout",
  417: "ExpectationFailed",
  431: "RequestHeaderFieldsTooLarge",
  501: "NotImplemented",
  505: "HttpVersionNotSupported",
};

/** node's http.Server as the client side (clientServer: "node"). */
function nodeClientServer(
  onRequest: (req: ClientRequest, res: ClientResponse) => void,
  onUpgrade: (req: Pick<ClientRequest, "method" | "target" | "rawHeaders" | "remoteAddress">, socket: Duplex, head: Buffer) => void,
  limits: ClientLimits,
): Server & { closeAllConnections(): void } {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => onRequest(nodeClientRequest(req), res));
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => onUpgrade(nodeClientRequest(req), socket, head));
  return server;
}

function nodeClientRequest(req: IncomingMessage): ClientRequest {
  return {
    method: req.method ?? "GET",
    target: req.url ?? "/",
    rawHeaders: req.rawHeaders,
    remoteAddress: req.socket.remoteAddress,
    readBody(onData, onEnd) {
      req.on("data", onData);
      req.once("end", onEnd);
    },
    pause: () => void req.pause(),
    resume: () => void req.resume(),
    discardBody: () => void req.resume(),
  };
}
