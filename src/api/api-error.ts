import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { StoreError, type StoreErrorCode } from "../store/store.ts";
import { MAX_BODY_BYTES } from "./limits.ts";

/**
 * Every error response has one shape: `{ error: { code, message, hint?, details? } }`. Handlers
 * throw ApiError (or let a StoreError through); the error handler turns anything into that shape.
 */
export type ApiErrorCode = "Invalid" | "Unauthorized" | "Forbidden" | "NotFound" | "Conflict" | "AlreadyExists" | "Gone" | "TooLarge" | "TooManyRequests" | "Internal" | "Unavailable";

export interface ErrorDetail {
  /** A JSON pointer into the request part that was wrong, e.g. /spec/replicas. */
  path: string;
  message: string;
}

export interface ErrorBody {
  error: { code: ApiErrorCode; message: string; hint?: string; details?: ErrorDetail[] };
}

const STATUS: Record<ApiErrorCode, number> = {
  Invalid: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  AlreadyExists: 409,
  Gone: 410,
  TooLarge: 413,
  TooManyRequests: 429,
  Internal: 500,
  Unavailable: 503,
};

export class ApiError extends Error {
  readonly statusCode: number;

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly hint?: string,
    readonly details?: ErrorDetail[],
  ) {
    super(message);
    this.name = "ApiError";
    this.statusCode = STATUS[code];
  }

  body(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.hint === undefined ? {} : { hint: this.hint }),
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

const STORE_HINTS: Partial<Record<StoreErrorCode, string>> = {
  Conflict: "the object changed since you read it: GET it again, reapply your change and retry",
  AlreadyExists: "use PUT /api/v1/<plural>/<name> to change an existing object",
  Gone: "list the objects again and watch from the list's metadata.resourceVersion",
  Unavailable: "the control plane's store is unreachable or has no quorum: retry shortly; if it persists, check the etcd members",
};

export function fromStoreError(error: StoreError): ApiError {
  return new ApiError(error.code, error.message, STORE_HINTS[error.code]);
}

/** Converts whatever a handler, hook or Fastify itself threw. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof StoreError) return fromStoreError(error);
  const fastifyError = error as Partial<FastifyError>;
  const status = fastifyError.statusCode;
  // Fastify's own client errors: malformed JSON, unsupported content type, body too large...
  if (typeof status === "number" && status >= 400 && status < 500) {
    if (status === 404) return new ApiError("NotFound", fastifyError.message ?? "not found");
    if (status === 413) {
      return new ApiError("TooLarge", `the request body is larger than the API accepts (${MAX_BODY_BYTES} bytes)`, "send a smaller object: large data belongs in an image, not in an object");
    }
    const message = fastifyError.message ?? "invalid request";
    const aboutBody = String(fastifyError.code ?? "").startsWith("FST_ERR_CTP");
    const hint = aboutBody ? "send a JSON body with Content-Type: application/json" : "check the request's URL (its %-escapes) and headers";
    return new ApiError("Invalid", message, hint, [{ path: "", message }]);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ApiError("Internal", `internal error: ${message}`, "this is a bug or an environment problem; see the control plane's log");
}

export function errorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const apiError = toApiError(error);
  if (apiError.code === "Internal") request.log.error({ err: error }, "request failed");
  if (apiError.code === "Unauthorized") reply.header("www-authenticate", 'Bearer realm="pith"');
  return reply.code(apiError.statusCode).type("application/json; charset=utf-8").send(apiError.body());
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const error = new ApiError("NotFound", `no route ${request.method} ${request.url.split("?")[0]}`, "GET /openapi.json lists every route");
  return reply.code(404).send(error.body());
}
