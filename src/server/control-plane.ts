import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { FastifyInstance } from "fastify";
import { createApiServer } from "../api/api-server.ts";
import { ensureToken } from "../api/token.ts";
import { EventRecorder } from "../controller/event-recorder.ts";
import { informersFor } from "../controller/informers.ts";
import { LoadBoard } from "../controller/load-board.ts";
import { NodeHealth } from "../controller/node-health.ts";
import { ControllerRunner } from "../controller/runner.ts";
import { Scheduler } from "../controller/scheduler.ts";
import { ServiceReconciler } from "../controller/service-reconciler.ts";
import { machinesDir, pithHome } from "../shared/paths.ts";
import type { Store } from "../store/store.ts";
import type { LeaderTerm, Leadership } from "../controller/leadership.ts";
import { controllersLeader } from "../shared/metrics.ts";
import { openStoreBackend, type StoreConfig } from "./store-backend.ts";
import { ensurePithHome } from "../shared/private-files.ts";
import type { TokenRegistry } from "../store/token-registry.ts";
import { webUi } from "../web/plugin.ts";
import { SecretBox, secretsKeyPath } from "../secrets/secret-box.ts";

export interface ControlPlaneOptions {
  host: string;
  port: number;
  /** Defaults to <PITH_HOME>/state.db. */
  databasePath?: string;
  /** Where the state is; default SQLite at databasePath. With etcd, several control planes may share it. */
  store?: StoreConfig;
  resyncMs?: number;
  log?: (message: string) => void;
}

export interface ControlPlane {
  url: string;
  /** The bootstrap admin token ($PITH_HOME/token). */
  token: string;
  store: Store;
  /** Tokens with roles (pith token), in the store's file. */
  tokens: TokenRegistry;
  /** Where an in-process proxy reports load (a separate proxy uses PUT /api/v1/services/:name/load). */
  load: LoadBoard;
  /** Whether this control plane runs the controllers now (always, with SQLite). */
  leadership: Leadership;
  close(): Promise<void>;
}

/**
 * The control plane: the store, the HTTP API over it, and the controllers that turn declared
 * services into machines. Everything it knows is in the store, so a restart (even after kill -9)
 * loses nothing: controllers are level-based and pick up from what is.
 */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const log = options.log ?? (() => {});
  await ensurePithHome();
  const backend = await openStoreBackend(options.store ?? { kind: "sqlite", path: options.databasePath ?? join(pithHome(), "state.db") });
  const { store } = backend;
  const token = await ensureToken();
  // Beside the store: the key that seals Secret values in it (a copy of state.db alone opens none).
  const secrets = await SecretBox.forHome(options.databasePath && options.databasePath !== ":memory:" ? join(dirname(options.databasePath), "secrets.key") : secretsKeyPath());
  const load = new LoadBoard();
  const api: FastifyInstance = await createApiServer({
    store,
    token,
    tokens: backend.tokens,
    secrets,
    openRoutes: webUi,
    onLoadReport: (service, report) => load.report(service, report),
    // Single host: a machine's console is in its state directory on this host.
    consoleLogPath: async (name) => {
      const path = join(machinesDir(), name, "console.log");
      return existsSync(path) ? path : undefined;
    },
  });
  const url = await api.listen({ host: options.host, port: options.port });
  log(`control plane listening on ${url} (state in ${backend.description})`);

  // The controllers run only while this control plane leads; a new term starts them afresh.
  let current: { controllers: ControllerRunner; services: ServiceReconciler } | undefined;
  let stopped: Promise<void> = Promise.resolve();
  const leadership = backend.leadership(url, log);
  const lead = (term: LeaderTerm): void => {
    controllersLeader.set(1);
    stopped = runControllers(term, options.resyncMs ?? 5000, load, log, (running) => (current = running))
      .catch((e: unknown) => log(`controllers stopped: ${(e as Error).message}`))
      .finally(() => {
        current = undefined;
        controllersLeader.set(0);
      });
  };
  leadership.run(lead);
  load.onReport((service) => current?.controllers.enqueue(current.services, service));
  return {
    url,
    token,
    store,
    tokens: backend.tokens,
    load,
    leadership,
    async close() {
      await leadership.stop();
      await stopped;
      // Idle keep-alive connections would hold close() open for seconds.
      const closing = api.close();
      api.server.closeAllConnections();
      await closing;
      await store.close();
    },
  };
}

/**
 * The controllers of one leader term: caches over the term's (fenced) store, the reconcilers and
 * their runner; stopped when the term ends. Resolves then.
 */
async function runControllers(
  term: LeaderTerm,
  resyncMs: number,
  load: LoadBoard,
  log: (message: string) => void,
  running: (controllers: { controllers: ControllerRunner; services: ServiceReconciler }) => void,
): Promise<void> {
  if (term.signal.aborted) return;
  const { store } = term;
  // One cache per kind, shared by every controller, fed by the store's own watch.
  const informers = informersFor(store);
  const events = new EventRecorder(store, { store, cache: informers.events });
  const services = new ServiceReconciler(store, events, load, Date.now, informers);
  const controllers = new ControllerRunner(store, [services, new Scheduler(store, events, informers), new NodeHealth(store, events, Date.now, informers)], {
    resyncMs,
    informers,
    onError: (controller, key, e) => log(`${controller} ${key}: ${(e as Error).message}`),
  });
  const ended = new Promise<void>((resolve) => term.signal.addEventListener("abort", () => resolve(), { once: true }));
  const starting = controllers.start();
  starting.catch(() => {}); // a start the term's end overtook must not be an unhandled rejection
  try {
    await Promise.race([starting, ended]);
    if (!term.signal.aborted) running({ controllers, services });
    await ended;
  } finally {
    controllers.stop();
    informers.stop();
  }
}
