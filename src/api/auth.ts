import { timingSafeEqual } from "node:crypto";
import type { FastifyRequest, onRequestAsyncHookHandler, preHandlerAsyncHookHandler } from "fastify";
import type { Store } from "../store/store.ts";
import type { TokenRegistry } from "../store/token-registry.ts";
import { ApiError } from "./api-error.ts";
import { type Principal, principalOf, setPrincipal } from "./principal.ts";
import { authorizeObject, authorizeRoute } from "./roles.ts";
import { parseRegistryToken, sha256 } from "./token.ts";
import type { TokenSessions } from "./token-sessions.ts";

/**
 * Bearer-token authentication and authorization (roles.ts) for every route but `GET /healthz`.
 *
 * The token normally comes in `Authorization: Bearer <token>`. Browsers' EventSource cannot set
 * headers, so a Server-Sent Events watch (`Accept: text/event-stream` on a watch request) may pass
 * it as `?token=<token>` instead. Only there: a query token elsewhere is ignored, since URLs end up
 * in logs and histories.
 */
const OPEN_ROUTES = new Set(["GET /healthz"]);

const BOOTSTRAP_NAME = "admin token in $PITH_HOME/token";

export interface AuthOptions {
  /** The bootstrap admin token ($PITH_HOME/token). */
  adminToken: string;
  /** Every other token; without it only the admin token is accepted. */
  tokens?: TokenRegistry | undefined;
  sessions: TokenSessions;
}

/**
 * Authenticates (401) and makes the route-level role decision (403) before the body is read.
 * The registry is read on every request, so a revoked token is refused from the next request on.
 */
export function authHook(options: AuthOptions): onRequestAsyncHookHandler {
  // Comparing fixed-length digests keeps the comparison constant-time whatever the input length.
  const expected = sha256(options.adminToken);
  return async (request) => {
    if (OPEN_ROUTES.has(`${request.method} ${request.routeOptions.url ?? ""}`)) return;
    const presented = bearerToken(request) ?? sseQueryToken(request);
    if (presented === undefined) {
      throw new ApiError("Unauthorized", "this request needs an API token", "send 'Authorization: Bearer <token>', with the token from $PITH_HOME/token on the control plane's host or one from `pith token create`");
    }
    const principal = await authenticate(presented, expected, options.tokens);
    if (!principal) {
      throw new ApiError("Unauthorized", "the API token is not valid (or was revoked)", "use the token from $PITH_HOME/token on the control plane's host, or ask an admin for a new one (`pith token create`)");
    }
    setPrincipal(request, principal);
    options.sessions.track(principal.tokenId, request.raw.socket);
    if (authorizeRoute(principal, request)) objectChecks.add(request);
  };
}

/** Requests whose role decision also depends on the body or a stored object. */
const objectChecks = new WeakSet<FastifyRequest>();

/** The second half of the role decision, once the body is parsed and validated. */
export function objectCheckHook(store: Store): preHandlerAsyncHookHandler {
  return async (request) => {
    const principal = principalOf(request);
    if (principal && objectChecks.has(request)) await authorizeObject(principal, request, store);
  };
}

async function authenticate(presented: string, adminDigest: Buffer, tokens: TokenRegistry | undefined): Promise<Principal | undefined> {
  const registry = parseRegistryToken(presented);
  if (!registry) return timingSafeEqual(sha256(presented), adminDigest) ? { role: "admin", name: BOOTSTRAP_NAME } : undefined;
  const found = await tokens?.lookup(registry.id);
  if (!found || found.digest.length !== registry.digest.length || !timingSafeEqual(registry.digest, found.digest)) return undefined;
  const { record } = found;
  return { role: record.role, tokenId: record.id, name: record.name, ...(record.node === undefined ? {} : { node: record.node }) };
}

function bearerToken(request: FastifyRequest): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? "");
  return match?.[1];
}

/** True for a watch the client wants as Server-Sent Events. */
export function wantsEventStream(request: FastifyRequest): boolean {
  return (request.headers.accept ?? "").includes("text/event-stream");
}

function sseQueryToken(request: FastifyRequest): string | undefined {
  // The query is parsed before onRequest hooks but not yet validated: plain strings (or arrays).
  const query = request.query as Record<string, unknown>;
  // The same spellings of true the query validation accepts.
  const isWatch = request.routeOptions.url === "/api/v1/watch" || (typeof query.watch === "string" && /^(true|1)$/i.test(query.watch));
  if (!isWatch || !wantsEventStream(request)) return undefined;
  return typeof query.token === "string" ? query.token : undefined;
}
