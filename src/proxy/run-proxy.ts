import type { PithClient } from "../client/index.ts";
import { openPrivateAppendStream } from "../shared/private-files.ts";
import type { AccessLogEntry } from "./exchange/access-log.ts";
import { HaproxyEngine } from "./haproxy/haproxy-engine.ts";
import { createProxyServer, type ProxyServer } from "./proxy-server.ts";
import { RouteTable } from "./routes/route-table.ts";
import type { RouteSource } from "./routes/route.ts";
import type { UpstreamConnector } from "./upstream/upstream-connector.ts";

export interface RunningProxy {
  server: ProxyServer;
  url: string;
  /** Settles when the route table's watches end: rejects if they failed for good (the routes are stale from then on). */
  routesDone: Promise<void>;
  close(): Promise<void>;
}

/** While a service has traffic, its load is reported this often (and at once when a hold starts)... */
const REPORT_MS = 500;
/** ...as the average of samples taken this often, so a momentary burst is not a trend. */
const SAMPLE_MS = 50;

/**
 * The proxy assembled: a route table pushed from the control plane's watch, the data path, and
 * load reports for the autoscaler: in-process in `pith up`, over the API for a separate proxy.
 */
export async function startProxy(options: {
  client: PithClient;
  host: string;
  port: number;
  report: (service: string, load: { inFlight: number; waiting: number }) => void | Promise<void>;
  accessLogPath?: string;
  onError?: (error: unknown) => void;
  /** How connections reach machines (default: TCP to their forwarded ports); the proxy machine tunnels through the API. */
  connector?: UpstreamConnector;
  /**
   * A service this proxy never routes to (its hosts answer 404): the proxy's own, when it runs as
   * that service's machine. Routing there would send a request back to a proxy, round and round.
   */
  ownService?: string;
  /**
   * The data path: "node" (default) serves every request in this process; "haproxy" puts HAProxy
   * on host:port, driven over its runtime API, with this process's proxy behind it on a private
   * loopback port for what HAProxy cannot do (holding requests while a machine boots, 404s).
   */
  engine?: "node" | "haproxy";
  /** HAProxy worker threads (engine "haproxy"; default: one per CPU). */
  haproxyThreads?: number;
}): Promise<RunningProxy> {
  const abort = new AbortController();
  const onError = options.onError ?? ((e: unknown) => console.error("pith proxy:", e));
  const routes = new RouteTable(options.client, { onError });
  const report = (service: string, load: { inFlight: number; waiting: number }) => {
    void Promise.resolve(options.report(service, load)).catch(onError);
  };
  // In flight is reported as an average over the last window: when a cold start releases twenty
  // held requests at once, that is twenty in flight for a moment, not load worth a second machine.
  const samples = new Map<string, { sum: number; count: number; average: number }>();
  const own = options.ownService;
  const source: RouteSource = own === undefined ? routes : {
    lookup: (host, path) => {
      const route = routes.lookup(host, path);
      return route?.service === own ? undefined : route;
    },
    onChange: (listener) => routes.onChange(listener),
  };
  const engine = options.engine === "haproxy"
    ? new HaproxyEngine({ routes: source, onError, ...(options.haproxyThreads !== undefined ? { threads: options.haproxyThreads } : {}) })
    : undefined;
  // After the engine subscribes: the table's first batch tells it every service there is.
  await routes.start(abort.signal);
  const log = options.accessLogPath ? openPrivateAppendStream(options.accessLogPath) : undefined;
  // A log that cannot be written (a full disk, a removed directory) loses lines, not the proxy:
  // a stream's unheard 'error' would end the process.
  log?.on("error", (e) => onError(new Error(`cannot write the access log ${options.accessLogPath}: ${e.message}`)));
  const proxyLoad = () => (engine ? engine.load(server.proxyLoad()) : server.proxyLoad());
  const server = createProxyServer({
    routes: engine ? engine.fallbackRoutes : source,
    onDemand: (service, load) => report(service, { inFlight: samples.get(service)?.average ?? 0, waiting: load.waiting }),
    onError,
    ...(options.connector ? { connector: options.connector } : {}),
    ...(log ? { accessLog: (entry: AccessLogEntry) => void log.write(JSON.stringify(entry) + "\n") } : {}),
  });
  const sampler = setInterval(() => {
    for (const [service, load] of Object.entries(proxyLoad())) {
      const s = samples.get(service) ?? { sum: 0, count: 0, average: 0 };
      s.sum += load.inFlight;
      s.count++;
      samples.set(service, s);
    }
  }, SAMPLE_MS);
  // Report busy services, and each service once more when it goes quiet (so its idle clock starts).
  const lastReported = new Map<string, string>();
  const timer = setInterval(() => {
    for (const [service, load] of Object.entries(proxyLoad())) {
      const s = samples.get(service);
      const inFlight = s && s.count > 0 ? Math.round((s.sum / s.count) * 10) / 10 : 0;
      if (s) Object.assign(s, { sum: 0, count: 0, average: inFlight });
      const key = `${inFlight}/${load.waiting}`;
      if (inFlight + load.waiting === 0 && lastReported.get(service) === key) continue;
      lastReported.set(service, key);
      report(service, { inFlight, waiting: load.waiting });
    }
  }, REPORT_MS);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      if (engine) server.listen(0, "127.0.0.1", () => resolve());
      else server.listen(options.port, options.host, () => resolve());
    });
    if (engine) await engine.start({ host: options.host, port: options.port, fallbackPort: (server.address() as { port: number }).port });
  } catch (error) {
    // Nothing to serve: stop what was started, so a caller that retries does not pile up watches.
    clearInterval(timer);
    clearInterval(sampler);
    abort.abort();
    server.close();
    await engine?.close();
    log?.end();
    throw error;
  }
  const address = server.address() as { port: number };
  return {
    server,
    url: `http://${options.host}:${engine ? engine.port : address.port}`,
    routesDone: routes.done,
    async close() {
      clearInterval(timer);
      clearInterval(sampler);
      abort.abort();
      await engine?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      log?.end();
    },
  };
}
