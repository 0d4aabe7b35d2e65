import { freeLoopbackPort } from "../../shared/free-port.ts";
import type { ServiceLoad } from "../exchange/service-state.ts";
import type { ProxyEngine, ProxyEngineOptions } from "../proxy-engine.ts";
import { createProxyServer, type ProxyServer } from "../proxy-server.ts";
import type { Route, RouteSource } from "../routes/route.ts";
import { FALLBACK_BACKEND, haproxyConfig, mapFile } from "./config.ts";
import { findHaproxy, type HaproxyFiles, HaproxyProcess, type HaproxyPaths } from "./haproxy-process.ts";
import { backendSessions, runtimeErrors } from "./runtime-api.ts";
import { type HaproxyState, SlotPlan } from "./slot-plan.ts";

/** How often in-flight counts are read from HAProxy (`show stat`): the load reports average these. */
const STATS_MS = 100;
/** How often learned hosts are checked against the route source: a host moving between services fires no route change. */
const SWEEP_MS = 1000;

export interface HaproxyEngineOptions extends ProxyEngineOptions {
  /** Told about runtime API commands HAProxy refused, hosts and machines it cannot take, and HAProxy ending. */
  onError: (error: unknown) => void;
  /** HAProxy worker threads (default: HAProxy's own, one per CPU). */
  threads?: number;
  /** The haproxy binary (default: found on this host). */
  haproxy?: string;
}

/**
 * HAProxy as Pith's data path. Pith keeps the routing decisions: the same RouteSource as the node
 * proxy pushes route changes, the SlotPlan turns them into slots of a pool backend per service and
 * a Host map, and they are applied over HAProxy's runtime API. Every host HAProxy does not map
 * goes to Pith's own node proxy (the fallback, `server`), which holds requests while a machine
 * boots and answers 404s.
 *
 * HAProxy learns a service's `spec.hosts` from the fallback: the first request for a host that
 * the route source knows goes through Pith and teaches HAProxy the host (the route source only
 * answers lookups; it does not list hosts). `<service>.localhost` is known from the start.
 */
export class HaproxyEngine implements ProxyEngine {
  /** Pith's fallback node proxy, on a private loopback port. */
  readonly server: ProxyServer;
  /** The fallback's route source: answers as the real one and teaches HAProxy each host it routes. */
  readonly fallbackRoutes: RouteSource;
  readonly #onError: (error: unknown) => void;
  readonly #threads: number | undefined;
  readonly #plan: SlotPlan;
  readonly #process: HaproxyProcess;
  readonly #warned = new Set<string>();
  #sessions = new Map<string, number>();
  #unsubscribe: () => void;
  #listen: { host: string; port: number; fallbackPort: number } | undefined;
  #timers: NodeJS.Timeout[] = [];
  #syncing: Promise<void> | undefined;
  #dirty = false;
  /** HAProxy serves: changes can go over its admin socket (before that, they wait: the files carry the state). */
  #started = false;
  #closed = false;
  #statsBusy = false;

  constructor(options: HaproxyEngineOptions) {
    const routes = options.routes;
    this.#onError = options.onError;
    this.#threads = options.threads;
    this.#process = new HaproxyProcess({ haproxy: options.haproxy ?? findHaproxy(), onExit: options.onError });
    this.#plan = new SlotPlan({
      routedService: (host) => routes.lookup(host, "/")?.service,
      warn: (key, message) => this.#warnOnce(key, message),
    });
    this.#unsubscribe = routes.onChange((service, route) => {
      this.#plan.routeChanged(service, route);
      this.#scheduleSync();
    });
    this.fallbackRoutes = {
      lookup: (host, path) => {
        const route = routes.lookup(host, path);
        if (route) this.#learn(host, route);
        return route;
      },
      onChange: (listener) => routes.onChange(listener),
    };
    this.server = createProxyServer({ ...options.server, routes: this.fallbackRoutes });
  }

  /** Starts the fallback on a private port, then HAProxy (master-worker) on host:port; resolves once HAProxy serves. */
  async listen(host: string, port: number): Promise<number> {
    if (this.#listen) throw new Error("HaproxyEngine.listen() was already called");
    const fallbackPort = await this.server.listenOn("127.0.0.1", 0);
    // HAProxy binds the port itself: port 0 (any) is chosen here, so the URL can say which.
    const listen = (this.#listen = { host, port: port === 0 ? await freeLoopbackPort() : port, fallbackPort });
    await this.#process.start(listen, (paths) => this.#files(paths));
    this.#started = true;
    this.#timers.push(setInterval(() => void this.#readStats(), STATS_MS));
    this.#timers.push(setInterval(() => this.#scheduleSync(), SWEEP_MS));
    this.#scheduleSync();
    return listen.port;
  }

  /** Where HAProxy's config, map and admin socket live, and the process group it runs in (for tests). */
  get runtime(): { dir: string | undefined; processGroup: number | undefined } {
    return { dir: this.#process.paths?.dir, processGroup: this.#process.processGroup };
  }

  /**
   * Per-service load: HAProxy's current sessions on the service's backend (requests being served
   * there, sampled every 100 ms) added to the fallback's own counts (requests it serves or holds).
   */
  load(): Record<string, ServiceLoad> {
    return this.#plan.load(this.server.proxyLoad(), this.#sessions);
  }

  /** What HAProxy has been told: slot -> `address:port`, and host -> backend (for tests). */
  applied(): Readonly<HaproxyState> {
    return this.#plan.appliedState;
  }

  /** Waits until HAProxy has every route change made so far (for tests and the benchmark). */
  async settled(): Promise<void> {
    while (this.#syncing) await this.#syncing;
  }

  /** Stops HAProxy, then the fallback; removes HAProxy's socket and files. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    for (const timer of this.#timers) clearInterval(timer);
    await this.#process.stop();
    await this.server.closeNow();
  }

  #learn(host: string, route: Route): void {
    if (this.#plan.learn(host, route)) this.#scheduleSync();
  }

  #scheduleSync(): void {
    this.#dirty = true;
    if (this.#syncing || !this.#started || this.#closed) return;
    this.#syncing = (async () => {
      try {
        while (this.#dirty && !this.#closed) {
          this.#dirty = false;
          await this.#sync();
        }
      } catch (error) {
        this.#onError(error);
      } finally {
        this.#syncing = undefined;
      }
    })();
  }

  async #sync(): Promise<void> {
    const plan = this.#plan;
    const paths = this.#process.paths!;
    if (plan.needsGrowth) {
      // More services than backends: a config with a bigger pool and the current state, and a seamless reload.
      plan.grow();
      await this.#process.reload(this.#files(paths));
      this.#dirty = true; // the sweep after a reload finds nothing to do unless routes moved meanwhile
      return;
    }
    const desired = plan.desired();
    const { fill, map, drain } = plan.changes(desired, paths.map);
    for (const batch of [fill, map, drain]) {
      if (batch.length === 0) continue;
      const errors = runtimeErrors(await this.#process.run(batch));
      if (errors.length > 0) this.#onError(new Error(`haproxy runtime API: ${errors.join("; ")} (for: ${batch.join("; ")})`));
    }
    plan.applied(desired);
  }

  /** haproxy.cfg and hosts.map for the whole wanted state; that state is then what HAProxy has. */
  #files(paths: HaproxyPaths): HaproxyFiles {
    const { host, port, fallbackPort } = this.#listen!;
    const state = this.#plan.filesState();
    return {
      map: mapFile(state.map),
      config: haproxyConfig({
        listenHost: host,
        listenPort: port,
        fallbackPort,
        socketPath: paths.socket,
        mapPath: paths.map,
        poolSize: state.poolSize,
        slots: state.slots,
        ...(this.#threads !== undefined ? { threads: this.#threads } : {}),
      }),
    };
  }

  async #readStats(): Promise<void> {
    if (this.#statsBusy || this.#closed) return;
    this.#statsBusy = true;
    try {
      this.#sessions = backendSessions(await this.#process.run(["show stat -1 2 -1"], 2000));
      this.#sessions.delete(FALLBACK_BACKEND);
    } catch (error) {
      this.#warnOnce("stats", `reading HAProxy's load failed (${(error as Error).message}); load reports miss HAProxy's requests until it works`);
    } finally {
      this.#statsBusy = false;
    }
  }

  #warnOnce(key: string, message: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#onError(new Error(message));
  }
}
