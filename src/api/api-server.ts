import swagger from "@fastify/swagger";
import { answerClientError } from "./client-error.ts";
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyRequest, type HTTPMethods } from "fastify";
import { KINDS } from "../model/resource.ts";
import type { Store } from "../store/store.ts";
import { errorHandler, notFoundHandler } from "./api-error.ts";
import { registerJsonBodyParser } from "./json-body.ts";
import { authHook, objectCheckHook } from "./auth.ts";
import type { ApiContext } from "./context.ts";
import { HEADERS_TIMEOUT_MS, MAX_BODY_BYTES, MAX_STREAMS_PER_CLIENT, REQUEST_TIMEOUT_MS } from "./limits.ts";
import { metricsHook } from "./metrics-hook.ts";
import { StreamQuota } from "./stream-quota.ts";
import { registerConsoleRoute } from "./routes/console.ts";
import { registerInspectRoute } from "./routes/inspect.ts";
import { registerMachineStatusesRoute } from "./routes/machine-statuses.ts";
import { registerResourceRoutes } from "./routes/resources.ts";
import { registerSecretEnvRoute } from "./routes/secret-env.ts";
import { registerServiceRoutes } from "./routes/services.ts";
import { registerSystemRoutes } from "./routes/system.ts";
import { registerTokenRoutes } from "./routes/tokens.ts";
import { registerTunnelRoute } from "./routes/tunnel.ts";
import { registerWatchAllRoute } from "./routes/watch.ts";
import { openApiComponents, OPENAPI_DESCRIPTION } from "./schemas/openapi.ts";
import type { ResponseStream } from "./streaming.ts";
import type { TokenRegistry } from "../store/token-registry.ts";
import type { SecretBox } from "../secrets/secret-box.ts";
import { TokenSessions } from "./token-sessions.ts";
import { validatorCompiler } from "./validation.ts";

export interface ApiServerOptions {
  store: Store;
  /** The bootstrap admin token (see token.ts); other tokens are in `tokens`. */
  token: string;
  /** Tokens with roles (roles.ts); without it only the admin token is accepted. */
  tokens?: TokenRegistry;
  /** Where a machine's console log is; undefined for an unknown machine (404). */
  consoleLogPath?: (machineName: string) => Promise<string | undefined>;
  /** Receives proxies' load reports (PUT /api/v1/services/:name/load) for the autoscaler. */
  onLoadReport?: (service: string, load: { inFlight: number; waiting: number }) => void;
  /** Seals Secret values at rest ($PITH_HOME/secrets.key); without it, Secrets cannot be written. */
  secrets?: SecretBox;
  /** Fastify's request logging (default off). */
  logger?: boolean;
  /** Interval of watch bookmarks and SSE pings (default 10 s; tests shorten it). */
  heartbeatMs?: number;
  /** Poll interval of a followed console log (default 100 ms). */
  consolePollMs?: number;
  /** How long a client may take to send a request's headers, and all of it (tests shorten them). */
  timeouts?: { requestMs?: number; headersMs?: number };
  /** Streams (watches, console follows) one client may hold open (default MAX_STREAMS_PER_CLIENT). */
  maxStreamsPerClient?: number;
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
  const requestMs = options.timeouts?.requestMs ?? REQUEST_TIMEOUT_MS;
  const headersMs = Math.min(options.timeouts?.headersMs ?? HEADERS_TIMEOUT_MS, requestMs);
  const app = Fastify({
    logger: options.logger ?? false,
    exposeHeadRoutes: false,
    bodyLimit: MAX_BODY_BYTES,
    requestTimeout: requestMs,
    // Node checks these bounds every connectionsCheckingInterval (30 s by default): often enough
    // that a slow or stalled sender is cut off near its bound, not up to half a minute later.
    http: { headersTimeout: headersMs, requestTimeout: requestMs, connectionsCheckingInterval: Math.min(1000, Math.ceil(headersMs / 4)) },
    // A URL Fastify cannot route (a bad %-escape) gets the API's error shape like any other 400.
    frameworkErrors: (error, request, reply) => void errorHandler(error, request, reply), // a reply is thenable; send() answered
    // And so does a request Node's parser refuses before Fastify sees it (an oversized URL).
    clientErrorHandler: answerClientError,
  });
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
    streamQuota: new StreamQuota(options.maxStreamsPerClient ?? MAX_STREAMS_PER_CLIENT),
    onLoadReport: options.onLoadReport,
    secrets: options.secrets,
  };

  app.setValidatorCompiler(validatorCompiler);
  registerJsonBodyParser(app);
  // Responses are plain JSON.stringify: the response schemas document the API, they do not filter it.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  const sessions = new TokenSessions();
  const auth = authHook({ adminToken: options.token, tokens: options.tokens, sessions });
  // Open routes (the GUI's page and assets) carry no data: only they are exempt from the token check.
  const open = options.openRoutes;
  app.addHook("onRequest", open ? async function (request, reply) { if (!open.serves(request)) await auth.call(this, request, reply); } : auth);
  app.addHook("preHandler", objectCheckHook(options.store));
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
  registerMachineStatusesRoute(app, ctx);
  registerSecretEnvRoute(app, ctx);
  registerConsoleRoute(app, ctx);
  registerInspectRoute(app, ctx);
  registerTunnelRoute(app, ctx);
  registerTokenRoutes(app, { tokens: options.tokens, sessions });
  if (open) await app.register(open.plugin);
  await app.ready();
  return app;
}
