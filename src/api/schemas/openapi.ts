import type { TSchema } from "@sinclair/typebox";
import { KINDS } from "../../model/resource.ts";
import { ErrorBody } from "./common.ts";
import { KIND_SCHEMAS } from "./kinds.ts";
import { WatchEventSchema } from "./requests.ts";

export const OPENAPI_DESCRIPTION = [
  "Every route but GET /healthz needs `Authorization: Bearer <token>` (the token is in $PITH_HOME/token on the control plane's host).",
  "A token has a role (admin, read-only, node, proxy; /api/v1/tokens manages them); a route its role may not use answers 403.",
  "Server-Sent Events watches (Accept: text/event-stream) may pass it as `?token=` instead, because EventSource cannot set headers.",
  "Errors are `{error: {code, message, hint?, details?: [{path, message}]}}`.",
  "Watch with `?watch=true&resourceVersion=N`: NDJSON lines `{type, object}` (ADDED, MODIFIED, DELETED, and a BOOKMARK every 10 s),",
  "or SSE (`id`, `event`, `data`) resuming from Last-Event-ID. 410 Gone if revision N is no longer in the history.",
].join("\n");

/** Named schemas and the security scheme, so clients can generate types from the document. */
export function openApiComponents() {
  const schemas: Record<string, TSchema> = { Error: ErrorBody, WatchEvent: WatchEventSchema };
  for (const kind of KINDS) {
    schemas[kind] = KIND_SCHEMAS[kind].resource;
    schemas[`${kind}Input`] = KIND_SCHEMAS[kind].input;
  }
  return { securitySchemes: { bearerAuth: { type: "http" as const, scheme: "bearer" } }, schemas };
}
