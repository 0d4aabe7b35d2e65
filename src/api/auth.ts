import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyRequest, onRequestAsyncHookHandler } from "fastify";
import { ApiError } from "./api-error.ts";

/**
 * Bearer-token authentication for every route but `GET /healthz`.
 *
 * The token normally comes in `Authorization: Bearer <token>`. Browsers' EventSource cannot set
 * headers, so a Server-Sent Events watch (`Accept: text/event-stream` on a watch request) may pass
 * it as `?token=<token>` instead. Only there: a query token elsewhere is ignored, since URLs end up
 * in logs and histories.
 */
const OPEN_ROUTES = new Set(["GET /healthz"]);

const digest = (value: string): Buffer => createHash("sha256").update(value).digest();

export function authHook(token: string): onRequestAsyncHookHandler {
  // Comparing fixed-length digests keeps the comparison constant-time whatever the input length.
  const expected = digest(token);
  return async (request) => {
    if (OPEN_ROUTES.has(`${request.method} ${request.routeOptions.url ?? ""}`)) return;
    const presented = bearerToken(request) ?? sseQueryToken(request);
    if (presented === undefined) {
      throw new ApiError("Unauthorized", "this request needs an API token", "send 'Authorization: Bearer <token>', with the token from $PITH_HOME/token on the control plane's host");
    }
    if (!timingSafeEqual(digest(presented), expected)) {
      throw new ApiError("Unauthorized", "the API token is not valid", "use the token from $PITH_HOME/token on the control plane's host");
    }
  };
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
