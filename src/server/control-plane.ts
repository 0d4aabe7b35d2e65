import { existsSync } from "node:fs";
import { join } from "node:path";
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
import { SqliteStore } from "../store/sqlite/sqlite-store.ts";
import type { Store } from "../store/store.ts";
import { ensurePithHome } from "../shared/private-files.ts";
import type { TokenRegistry } from "../store/token-registry.ts";
import { webUi } from "../web/plugin.ts";

export interface ControlPlaneOptions {
  host: string;
  port: number;
  /** Defaults to <PITH_HOME>/state.db. */
  databasePath?: string;
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
  const store = SqliteStore.open(options.databasePath ?? join(pithHome(), "state.db"));
  const token = await ensureToken();
  const load = new LoadBoard();
  const api: FastifyInstance = await createApiServer({
    store,
    token,
    tokens: store.tokens,
    openRoutes: webUi,
    onLoadReport: (service, report) => load.report(service, report),
    // Single host: a machine's console is in its state directory on this host.
    consoleLogPath: async (name) => {
      const path = join(machinesDir(), name, "console.log");
      return existsSync(path) ? path : undefined;
    },
  });
  const url = await api.listen({ host: options.host, port: options.port });
  // One cache per kind, shared by every controller, fed by the store's own watch.
  const informers = informersFor(store);
  const events = new EventRecorder(store, { store, cache: informers.events });
  const services = new ServiceReconciler(store, events, load, Date.now, informers);
  const controllers = new ControllerRunner(store, [services, new Scheduler(store, events, informers), new NodeHealth(store, events, Date.now, informers)], {
    resyncMs: options.resyncMs ?? 5000,
    informers,
    onError: (controller, key, e) => log(`${controller} ${key}: ${(e as Error).message}`),
  });
  await controllers.start();
  load.onReport((service) => controllers.enqueue(services, service));
  log(`control plane listening on ${url} (state ${options.databasePath ?? join(pithHome(), "state.db")})`);
  return {
    url,
    token,
    store,
    tokens: store.tokens,
    load,
    async close() {
      controllers.stop();
      informers.stop();
      // Idle keep-alive connections would hold close() open for seconds.
      const closing = api.close();
      api.server.closeAllConnections();
      await closing;
      await store.close();
    },
  };
}
