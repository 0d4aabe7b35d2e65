import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import type { PithEvent, VolumeSpec, VolumeStatus } from "../../model/kinds.ts";
import { API_VERSION, PLURALS, type Kind, type Resource, type ResourceInput } from "../../model/resource.ts";
import { sameDeclaration } from "../../model/declaration.ts";
import { StoreError } from "../../store/store.ts";
import { ApiError } from "../api-error.ts";
import type { ApiContext } from "../context.ts";
import { KIND_SCHEMAS } from "../schemas/kinds.ts";
import { DeleteQuery, errorResponses, EventListQuery, ListQuery, listSchema, NameParams, statusBody, WatchEventSchema } from "../schemas/requests.ts";
import { invalid } from "../validation.ts";
import { principalOf } from "../principal.ts";
import { visibleTo } from "../redaction.ts";
import { sealSecretInput } from "../secret-values.ts";
import { notFound, readModifyWrite } from "./read-modify-write.ts";
import { serveWatch } from "./watch.ts";
import { deleteVolume, replaceVolume, writeVolumeStatus } from "./volume-guards.ts";

/**
 * The uniform routes every kind has: list (or watch), create, get, replace, replace status, delete.
 * Handlers only translate between HTTP and Store calls.
 */
type ListQueryT = Static<typeof EventListQuery>;
type NameParamsT = Static<typeof NameParams>;
type StatusBodyT = { metadata?: { resourceVersion?: string }; status: unknown };

export function registerResourceRoutes(app: FastifyInstance, ctx: ApiContext, kind: Kind): void {
  const { store } = ctx;
  const plural = PLURALS[kind];
  const schemas = KIND_SCHEMAS[kind];
  const collection = `/api/v1/${plural}`;
  const item = `${collection}/:name`;
  const tags = [kind];

  app.get<{ Querystring: ListQueryT }>(
    collection,
    {
      schema: {
        summary: `List ${plural}, or watch them with ?watch=true`,
        tags,
        querystring: kind === "Event" ? EventListQuery : ListQuery,
        response: {
          200: {
            description: `The ${plural}; with watch=true a stream of changes (NDJSON, or SSE when Accept is text/event-stream)`,
            content: {
              "application/json": { schema: listSchema(kind, schemas.resource) },
              "application/x-ndjson": { schema: WatchEventSchema },
              "text/event-stream": { schema: { type: "string" } },
            },
          },
          ...errorResponses(400, 401, 410),
        },
      },
    },
    async (request, reply) => {
      const query = request.query;
      const labels = parseLabelSelector(query.labelSelector);
      const involved = query.involved;
      const filter = involved === undefined ? undefined : (object: Resource) => isAbout(object as PithEvent, involved);
      if (query.watch) {
        if (labels) throw invalid("query string", [{ path: "/labelSelector", message: "is not supported with watch=true" }]);
        return serveWatch(ctx, request, reply, { kind, resourceVersion: query.resourceVersion, filter });
      }
      if (query.resourceVersion !== undefined) {
        throw invalid("query string", [{ path: "/resourceVersion", message: "applies only with watch=true (a list is always of the current state)" }]);
      }
      const list = await store.list(kind, labels ? { labels } : {});
      const principal = principalOf(request);
      const items = (filter ? list.items.filter(filter) : list.items).map((item) => visibleTo(principal, item));
      if (kind === "Event") (items as PithEvent[]).sort(oldestFirst);
      return { apiVersion: API_VERSION, kind: `${kind}List`, metadata: { resourceVersion: list.resourceVersion }, items };
    },
  );

  app.post<{ Body: ResourceInput }>(
    collection,
    {
      schema: {
        summary: `Create a ${kind} (repeating an identical create returns the existing object)`,
        tags,
        body: schemas.input,
        response: {
          201: { ...schemas.resource, description: "created" },
          200: { ...schemas.resource, description: "an object with this name, spec and labels already existed" },
          ...errorResponses(400, 401, 409),
        },
      },
    },
    async (request, reply) => {
      const { resourceVersion: _ignored, ...metadata } = request.body.metadata;
      const input = { ...request.body, metadata };
      const principal = principalOf(request);
      try {
        return reply.code(201).send(visibleTo(principal, await store.create(sealSecretInput(ctx.secrets, input, undefined))));
      } catch (error) {
        if (!(error instanceof StoreError && error.code === "AlreadyExists")) throw error;
        const existing = await store.get(kind, metadata.name);
        if (existing && sameDeclaration(existing, sealSecretInput(ctx.secrets, input, existing))) return reply.code(200).send(visibleTo(principal, existing));
        throw new ApiError(
          "AlreadyExists",
          `${kind} ${metadata.name} already exists with a different spec or labels`,
          `to change it, replace it with PUT ${collection}/${metadata.name} (pith apply does this)`,
        );
      }
    },
  );

  app.get<{ Params: NameParamsT }>(
    item,
    {
      schema: {
        summary: `Read a ${kind}`,
        tags,
        params: NameParams,
        response: { 200: schemas.resource, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      const object = await store.get(kind, request.params.name);
      if (!object) throw notFound(kind, request.params.name);
      return visibleTo(principalOf(request), object);
    },
  );

  app.put<{ Params: NameParamsT; Body: ResourceInput }>(
    item,
    {
      schema: {
        summary: `Replace a ${kind}'s spec and labels (and status, if given)`,
        description: "metadata.resourceVersion, if given, must be the current one. An omitted status keeps the stored status.",
        tags,
        params: NameParams,
        body: schemas.input,
        response: { 200: schemas.resource, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => {
      const { name } = request.params;
      if (request.body.metadata.name !== name) {
        throw invalid("request body", [{ path: "/metadata/name", message: `must be ${JSON.stringify(name)}, the name in the URL` }]);
      }
      if (kind === "Volume") return replaceVolume(store, request.body as ResourceInput<"Volume", VolumeSpec, VolumeStatus>);
      const existing = kind === "Secret" ? await store.get(kind, name) : undefined;
      return visibleTo(principalOf(request), await store.update(sealSecretInput(ctx.secrets, request.body, existing)));
    },
  );

  app.put<{ Params: NameParamsT; Body: StatusBodyT }>(
    `${item}/status`,
    {
      schema: {
        summary: `Replace a ${kind}'s status (spec and labels are kept)`,
        description: "metadata.resourceVersion, if given, must be the current one.",
        tags,
        params: NameParams,
        body: statusBody(schemas.status),
        response: { 200: schemas.resource, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => {
      const { name } = request.params;
      if (kind === "Volume") {
        return visibleTo(principalOf(request), await writeVolumeStatus(store, name, request.body.metadata?.resourceVersion, request.body.status as VolumeStatus));
      }
      const written = await readModifyWrite(store, kind, name, request.body.metadata?.resourceVersion, (existing) => ({
        apiVersion: API_VERSION,
        kind,
        metadata: { name, labels: existing.metadata.labels },
        spec: existing.spec,
        status: request.body.status,
      }));
      return visibleTo(principalOf(request), written);
    },
  );

  app.delete<{ Params: NameParamsT; Querystring: Static<typeof DeleteQuery> }>(
    item,
    {
      schema: {
        summary: `Delete a ${kind}`,
        tags,
        params: NameParams,
        querystring: DeleteQuery,
        response: { 200: { ...schemas.resource, description: "the deleted object" }, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => {
      const { resourceVersion } = request.query;
      if (kind === "Volume") return deleteVolume(store, request.params.name, resourceVersion);
      const deleted = await store.delete(kind, request.params.name, resourceVersion === undefined ? {} : { expectedResourceVersion: resourceVersion });
      return visibleTo(principalOf(request), deleted);
    },
  );
}

export function parseLabelSelector(selector: string | undefined): Record<string, string> | undefined {
  if (selector === undefined) return undefined;
  // fromEntries defines plain properties: a "__proto__" key is just a key.
  return Object.fromEntries(
    selector.split(",").map((pair) => {
      const at = pair.indexOf("=");
      return [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
    }),
  );
}

function isAbout(event: PithEvent, involved: string): boolean {
  const at = involved.indexOf("/");
  return event.spec.involved.kind === involved.slice(0, at) && event.spec.involved.name === involved.slice(at + 1);
}

/** Events sorted by when they happened, ties broken by write order. */
const oldestFirst = (a: PithEvent, b: PithEvent): number =>
  (a.spec.at < b.spec.at ? -1 : a.spec.at > b.spec.at ? 1 : 0) || Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion);
