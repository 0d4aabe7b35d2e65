import type { PithClient } from "../client/index.ts";
import { openRotatingLog } from "../shared/rotating-log.ts";
import type { AccessLogEntry } from "./exchange/access-log.ts";
import { HaproxyEngine } from "./haproxy/haproxy-engine.ts";
import { type LoadReport, LoadReporter } from "./load-reporter.ts";
import { NodeEngine } from "./node-engine.ts";
import type { ProxyEngine, ProxyEngineName, ProxyEngineOptions } from "./proxy-engine.ts";
import type { ProxyServer } from "./proxy-server.ts";
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

/**
 * The proxy assembled: a route table pushed from the control plane's watch, the data path, and
 * load reports for the autoscaler: in-process in `pith up`, over the API for a separate proxy.
 */
export async function startProxy(options: {
  client: PithClient;
  host: string;
  port: number;
  report: (service: string, load: LoadReport) => void | Promise<void>;
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
  engine?: ProxyEngineName;
  /** HAProxy worker threads (engine "haproxy"; default: one per CPU). */
  haproxyThreads?: number;
}): Promise<RunningProxy> {
  const abort = new AbortController();
  const onError = options.onError ?? ((e: unknown) => console.error("pith proxy:", e));
  const routes = new RouteTable(options.client, { onError });
  const reporter = new LoadReporter((service, load) => {
    void Promise.resolve(options.report(service, load)).catch(onError);
  });
  // A log that cannot be written (a full disk, a removed directory) loses lines, not the proxy.
  const log = options.accessLogPath
    ? openRotatingLog(options.accessLogPath, (e) => onError(new Error(`cannot write the access log ${options.accessLogPath}: ${e.message}`)))
    : undefined;
  const engineOptions: ProxyEngineOptions = {
    routes: withoutService(routes, options.ownService),
    server: {
      onDemand: reporter.demand,
      onError,
      ...(options.connector ? { connector: options.connector } : {}),
      ...(log ? { accessLog: (entry: AccessLogEntry) => log.write(JSON.stringify(entry) + "\n") } : {}),
    },
  };
  const engines: Record<ProxyEngineName, () => ProxyEngine> = {
    node: () => new NodeEngine(engineOptions),
    haproxy: () => new HaproxyEngine({ ...engineOptions, onError, ...(options.haproxyThreads !== undefined ? { threads: options.haproxyThreads } : {}) }),
  };
  const engine = engines[options.engine ?? "node"]();
  const stop = async (): Promise<void> => {
    reporter.stop();
    abort.abort();
    await engine.close();
    await log?.close();
  };
  let port: number;
  try {
    // After the engine subscribed: the table's first batch tells it every service there is.
    await routes.start(abort.signal);
    port = await engine.listen(options.host, options.port);
  } catch (error) {
    // Nothing to serve: stop what was started, so a caller that retries does not pile up watches.
    await stop();
    throw error;
  }
  reporter.start(() => engine.load());
  return { server: engine.server, url: `http://${options.host}:${port}`, routesDone: routes.done, close: stop };
}

/** The routes, except that `service`'s hosts route nowhere. */
function withoutService(routes: RouteSource, service: string | undefined): RouteSource {
  if (service === undefined) return routes;
  return {
    lookup: (host, path) => {
      const route = routes.lookup(host, path);
      return route?.service === service ? undefined : route;
    },
    onChange: (listener) => routes.onChange(listener),
  };
}
