import swagger from "@fastify/swagger";
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyRequest, type HTTPMethods } from "fastify";
import { KINDS } from "../model/resource.ts";
import type { Store } from "../store/store.ts";
import { errorHandler, notFoundHandler } from "./api-error.ts";
import { authHook } from "./auth.ts";
import type { ApiContext } from "./context.ts";
import { metricsHook } from "./metrics-hook.ts";
import { registerConsoleRoute } from "./routes/console.ts";
import { registerInspectRoute } from "./routes/inspect.ts";
import { registerResourceRoutes } from "./routes/resources.ts";
import { registerServiceRoutes } from "./routes/services.ts";
import { registerSystemRoutes } from "./routes/system.ts";
import { registerTunnelRoute } from "./routes/tunnel.ts";
import { registerWatchAllRoute } from "./routes/watch.ts";
import { openApiComponents, OPENAPI_DESCRIPTION } from "./schemas/openapi.ts";
import type { ResponseStream } from "./streaming.ts";
import { validatorCompiler } from "./validation.ts";

export interface ApiServerOptions {
  store: Store;
  /** The API token every request but GET /healthz must present (see token.ts). */
  token: string;
  /** Where a machine's console log is; undefined for an unknown machine (404). */
  consoleLogPath?: (machineName: string) => Promise<string | undefined>;
  /** Receives proxies' load reports (PUT /api/v1/services/:name/load) for the autoscaler. */
  onLoadReport?: (service: string, load: { inFlight: number; waiting: number }) => void;
  /** Fastify's request logging (default off). */
  logger?: boolean;
  /** Interval of watch bookmarks and SSE pings (default 10 s; tests shorten it). */
  heartbeatMs?: number;
  /** Poll interval of a followed console log (default 100 ms). */
  consolePollMs?: number;
  /** Routes served beside the API without a token (the web GUI: its page asks for the token). */
  openRoutes?: OpenRoutes;
}

/** Routes that carry no data, so the token check leaves them alone. */
export interface OpenRoutes {
  plugin: FastifyPluginAsync;
  /** True for a request to one of the plugin's routes. */
  serves(request: FastifyRequest): boolean;
}

export interface RouteInfo {
  method: string;
  /** The route pattern, e.g. /api/v1/services/:name. */
  url: string;
}

const routeTables = new WeakMap<FastifyInstance, RouteInfo[]>();

/** Every route the server registered, in order (for tests and docs). */
export const registeredRoutes = (app: FastifyInstance): readonly RouteInfo[] => routeTables.get(app) ?? [];

/**
 * The control plane's HTTP API: parses and validates requests into calls on the Store, and
 * nothing more. Returns the server ready but not listening: the caller calls `.listen()` (and
 * `.close()`, which also ends open watches and console follows).
 */
export async function createApiServer(options: ApiServerOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false, exposeHeadRoutes: false });
  const routes: RouteInfo[] = [];
  routeTables.set(app, routes);
  app.addHook("onRoute", (route) => {
    for (const method of ([] as HTTPMethods[]).concat(route.method)) routes.push({ method, url: route.url });
  });

  const streams = new Set<ResponseStream>();
  const ctx: ApiContext = {
    store: options.store,
    consoleLogPath: options.consoleLogPath,
    heartbeatMs: options.heartbeatMs ?? 10_000,
    consolePollMs: options.consolePollMs ?? 100,
    streams,
    onLoadReport: options.onLoadReport,
  };

  app.setValidatorCompiler(validatorCompiler);
  // Responses are plain JSON.stringify: the response schemas document the API, they do not filter it.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  const auth = authHook(options.token);
  const open = options.openRoutes;
  app.addHook("onRequest", open ? async function (request, reply) { if (!open.serves(request)) await auth.call(this, request, reply); } : auth);
  app.addHook("onResponse", metricsHook);
  app.addHook("preClose", async () => {
    for (const stream of [...streams]) stream.end();
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "Pith control plane API", version: "v1", description: OPENAPI_DESCRIPTION },
      components: openApiComponents(),
      security: [{ bearerAuth: [] }],
    },
  });

  registerSystemRoutes(app);
  registerWatchAllRoute(app, ctx);
  for (const kind of KINDS) registerResourceRoutes(app, ctx, kind);
  registerServiceRoutes(app, ctx);
  registerConsoleRoute(app, ctx);
  registerInspectRoute(app, ctx);
  registerTunnelRoute(app, ctx);
  if (open) await app.register(open.plugin);
  await app.ready();
  return app;
}
