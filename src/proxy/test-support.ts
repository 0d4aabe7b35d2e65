import { createServer, type IncomingHttpHeaders, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";
import { after } from "node:test";
import { type AddressInfo, createServer as createNetServer, type Server as NetServer } from "node:net";
import { until as pollUntil } from "../../test/support/until.ts";
import type { AccessLogEntry } from "./exchange/access-log.ts";
import { createProxyServer, type ProxyServer, type ProxyServerOptions } from "./proxy-server.ts";
import { type Backend, localhostService, normaliseHost, type Route, type RouteListener, type RouteSource } from "./routes/route.ts";

/** A route table the test drives by hand: set a service's hosts and backends, listeners are told. */
export class FakeRoutes implements RouteSource {
  readonly #routes = new Map<string, { route: Route; hosts: string[] }>();
  readonly #listeners = new Set<RouteListener>();
  readonly #backends = new Map<string, Backend>();

  /** Creates or replaces a service's route; backends are URLs, each its own machine (same URL -> same Backend object). */
  set(service: string, urls: string[], options: { hosts?: string[]; minZero?: boolean } = {}): Route {
    const backends = urls.map((url) => {
      let backend = this.#backends.get(url);
      if (!backend) this.#backends.set(url, (backend = { machine: `${service}-${this.#backends.size}`, url: new URL(url), inFlight: 0 }));
      return backend;
    });
    const route: Route = { service, backends, minZero: options.minZero ?? false };
    this.#routes.set(service, { route, hosts: (options.hosts ?? []).map(normaliseHost) });
    for (const listener of this.#listeners) listener(service, route);
    return route;
  }

  delete(service: string): void {
    this.#routes.delete(service);
    for (const listener of this.#listeners) listener(service, undefined);
  }

  backend(url: string): Backend | undefined {
    return this.#backends.get(url);
  }

  lookup(host: string, _path: string): Route | undefined {
    const key = normaliseHost(host);
    for (const { route, hosts } of this.#routes.values()) if (hosts.includes(key)) return route;
    const service = localhostService(key);
    return service === undefined ? undefined : this.#routes.get(service)?.route;
  }

  onChange(listener: RouteListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

export interface TestBackend {
  url: string;
  server: Server;
  /** Requests seen, in order. */
  requests: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[];
  close(): Promise<void>;
}

/** A plain node http server on 127.0.0.1; by default answers 200 `{"backend": name, ...request}`. */
export async function startBackend(
  name: string,
  handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<TestBackend> {
  const requests: TestBackend["requests"] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      if (handler) handler(req, res, body);
      else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ backend: name, method: req.method, url: req.url, headers: req.headers, body }));
    });
  });
  await listen(server);
  return { url: urlOf(server), server, requests, close: () => closeServer(server) };
}

/** A URL on 127.0.0.1 where nothing listens (connections are refused). */
export async function refusedUrl(): Promise<string> {
  const server = createServer();
  await listen(server);
  const url = urlOf(server);
  await closeServer(server);
  return url;
}

export interface TestProxy {
  url: string;
  port: number;
  proxy: ProxyServer;
  log: AccessLogEntry[];
  demand: { service: string; inFlight: number; waiting: number }[];
  close(): Promise<void>;
}

export async function startProxy(routes: RouteSource, options: Partial<ProxyServerOptions> = {}): Promise<TestProxy> {
  const log: AccessLogEntry[] = [];
  const demand: TestProxy["demand"] = [];
  const proxy = createProxyServer({
    routes,
    accessLog: (entry) => log.push(entry),
    onDemand: (service, load) => demand.push({ service, ...load }),
    ...options,
  });
  await listen(proxy);
  const port = (proxy.address() as AddressInfo).port;
  return { url: urlOf(proxy), port, proxy, log, demand, close: () => closeServer(proxy) };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json<T = Record<string, unknown>>(): T;
}

/** One request through the proxy with a chosen Host header (fetch cannot set Host). */
export function send(
  port: number,
  host: string,
  path = "/",
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method: options.method ?? "GET", agent: false, headers: { host, ...options.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body) as T });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

export const listen = (server: NetServer): Promise<void> => new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));

export const urlOf = (server: NetServer): string => `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

export function closeServer(server: NetServer & { closeAllConnections(): void }): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * Resolves if 127.0.0.1:port can be bound (whatever served it let it go); rejects with EADDRINUSE
 * otherwise. Binding, rather than connecting, says it: a refused connection could not tell a
 * listener that lingers from another test's that took the port meanwhile.
 */
export async function assertPortFree(port: number): Promise<void> {
  const probe = createNetServer();
  await new Promise<void>((resolve, reject) => probe.once("error", reject).listen(port, "127.0.0.1", resolve));
  await new Promise((resolve) => probe.close(resolve));
}

/**
 * Resolves once `check` returns true (checked every 5 ms); rejects after `timeoutMs`, saying what
 * it waited for (a function is asked only then, so it can add what happened meanwhile).
 */
export async function until(check: () => boolean, timeoutMs = 2000, what: string | (() => string) = "condition"): Promise<void> {
  await pollUntil(what, check, { timeoutMs, everyMs: 5 });
}

/**
 * Backends and proxies a describe block starts, closed after it (newest first); `cleanup` takes
 * anything else the block opens.
 */
export function closedAfterSuite(): {
  backend: (...args: Parameters<typeof startBackend>) => Promise<TestBackend>;
  proxyFor: (routes: FakeRoutes, options?: Parameters<typeof startProxy>[1]) => Promise<TestProxy>;
  cleanup: (() => Promise<void>)[];
} {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const close of cleanup.reverse()) await close();
  });
  return {
    cleanup,
    backend: async (...args) => {
      const b = await startBackend(...args);
      cleanup.push(b.close);
      return b;
    },
    proxyFor: async (routes, options = {}) => {
      const p = await startProxy(routes, options);
      cleanup.push(p.close);
      return p;
    },
  };
}
