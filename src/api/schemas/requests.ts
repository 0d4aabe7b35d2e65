import { Type, type TSchema } from "@sinclair/typebox";
import type { Kind } from "../../model/resource.ts";
import { closed, Enum, ErrorBody, Name, ResourceVersion } from "./common.ts";
import { Replicas } from "./kinds.ts";

/** Path parameters, query strings and the small request bodies of the API's routes. */

export const NameParams = Type.Object({ name: Name }, closed);

const Watch = Type.Boolean({ description: "stream changes instead of listing (NDJSON, or SSE with Accept: text/event-stream)" });
const FromRevision = Type.Optional(
  { ...ResourceVersion, description: "with watch: stream the changes after this revision (default: from now)" },
);
const QueryToken = Type.Optional(
  Type.String({ description: "the API token, accepted here only for Server-Sent Events watches (EventSource cannot set headers)" }),
);
const LabelSelector = Type.String({
  pattern: "^[^=,]+=[^=,]*(,[^=,]+=[^=,]*)*$",
  errorMessage: "must be key=value pairs separated by commas, e.g. app=web,tier=front",
  description: "only objects with all these labels: key=value[,key=value...]",
});
const Involved = Type.String({
  pattern: "^[A-Za-z]+/[^/]+$",
  errorMessage: "must be Kind/name, e.g. Service/web",
  description: "only the events about this object: Kind/name",
});

export const ListQuery = Type.Object(
  { labelSelector: Type.Optional(LabelSelector), watch: Type.Optional(Watch), resourceVersion: FromRevision, token: QueryToken },
  closed,
);
export const EventListQuery = Type.Object(
  {
    labelSelector: Type.Optional(LabelSelector),
    involved: Type.Optional(Involved),
    watch: Type.Optional(Watch),
    resourceVersion: FromRevision,
    token: QueryToken,
  },
  closed,
);
export const WatchAllQuery = Type.Object({ resourceVersion: FromRevision, token: QueryToken }, closed);

export const DeleteQuery = Type.Object(
  { resourceVersion: Type.Optional({ ...ResourceVersion, description: "delete only if the object is still at this revision" }) },
  closed,
);

export const ConsoleQuery = Type.Object(
  { follow: Type.Optional(Type.Boolean({ description: "keep streaming what is appended until the machine is deleted" })) },
  closed,
);

export const statusBody = (status: TSchema) =>
  Type.Object(
    {
      metadata: Type.Optional(Type.Object({ resourceVersion: Type.Optional(ResourceVersion) }, closed)),
      status,
    },
    closed,
  );

export const ScaleBody = Type.Object({ replicas: Replicas }, closed);

/** `pith rollout undo [--to-revision N]`: without a revision, the one before the current. */
export const RolloutBody = Type.Object({ toRevision: Type.Optional(Type.Integer({ minimum: 1 })) }, closed);
export const RolloutParams = Type.Object({ name: Name, action: Type.Union([Type.Literal("restart"), Type.Literal("undo")]) }, closed);

export const listSchema = (kind: Kind, resource: TSchema) =>
  Type.Object(
    {
      apiVersion: Type.Literal("pith.dev/v1"),
      kind: Type.Literal(`${kind}List`),
      metadata: Type.Object({ resourceVersion: Type.String() }, closed),
      items: Type.Array(resource),
    },
    { ...closed, title: `${kind}List` },
  );

/** One line of an NDJSON watch (SSE carries the same type as the event name, the object as data). */
export const WatchEventSchema = Type.Object(
  {
    type: Enum(["ADDED", "MODIFIED", "DELETED", "BOOKMARK"] as const),
    object: Type.Unknown({ description: "the object; for BOOKMARK only {metadata: {resourceVersion}}" }),
  },
  { ...closed, title: "WatchEvent" },
);

export const HealthBody = Type.Object({ ok: Type.Literal(true) }, closed);

/** Error responses, for the OpenAPI document. */
// Every route that takes a token can refuse it for its role: 401 brings 403 along.
export const errorResponses = (...codes: (400 | 401 | 404 | 409 | 410 | 413 | 429)[]): Record<number, TSchema> =>
  Object.fromEntries((codes.includes(401) ? [...codes, 403] : codes).map((code) => [code, { ...ErrorBody, description: ERROR_DESCRIPTIONS[code] }]));

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "Invalid: the request does not match the schema (details lists each problem)",
  401: "Unauthorized: no or a wrong bearer token",
  403: "Forbidden: the token's role may not do this (the message names the role and what it may do)",
  404: "NotFound",
  409: "Conflict (stale resourceVersion) or AlreadyExists (create with a different spec)",
  410: "Gone: the requested revision was compacted from the watch history",
  413: "TooLarge: the request body is over the API's limit",
  429: "TooManyRequests: this client has as many streams (watches, console follows) open as it may",
};

export const LoadBody = Type.Object(
  {
    inFlight: Type.Number({ minimum: 0, description: "requests in flight to this service's machines, averaged over the last half second" }),
    waiting: Type.Integer({ minimum: 0, description: "requests the proxy holds until a machine is ready" }),
  },
  { additionalProperties: false },
);
