import type { Static } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Kind, Resource } from "../../model/resource.ts";
import type { StoreWatchEvent } from "../../store/store.ts";
import { wantsEventStream } from "../auth.ts";
import type { ApiContext } from "../context.ts";
import { principalOf } from "../principal.ts";
import { visibleTo } from "../redaction.ts";
import { errorResponses, WatchAllQuery, WatchEventSchema } from "../schemas/requests.ts";
import { ResponseStream } from "../streaming.ts";
import type { StoreError } from "../../store/store.ts";
import { invalid } from "../validation.ts";

/**
 * Watches: every change after a revision, exactly once and in order, as it happens.
 *
 * NDJSON (the default): one `{"type":"ADDED|MODIFIED|DELETED","object":{...}}` per line, and every
 * heartbeat a `{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"N"}}}` line: all
 * changes up to N have been sent, so an idle client can resume from N.
 *
 * Server-Sent Events (`Accept: text/event-stream`): `id: <rv>`, `event: <TYPE>`, `data: <object>`;
 * every heartbeat a `: ping` comment with an `id: N` line (a data-less event is not dispatched, but
 * moves the browser's Last-Event-ID forward, like a bookmark). A reconnecting EventSource sends
 * Last-Event-ID, and the watch resumes after it.
 *
 * A client resumes by watching from the last resourceVersion it saw (event or bookmark); if the
 * history has been compacted past it, the answer is 410 Gone (before any streaming starts).
 */
type StoreEvent = StoreWatchEvent;

export interface WatchRequest {
  kind: Kind | undefined;
  resourceVersion: string | undefined;
  /** Only events whose object passes are sent (the others still advance bookmarks). */
  filter?: ((object: Resource) => boolean) | undefined;
}

const REVISION = /^(0|[1-9][0-9]{0,15})$/;

export async function serveWatch(ctx: ApiContext, request: FastifyRequest, reply: FastifyReply, watch: WatchRequest): Promise<FastifyReply> {
  const sse = wantsEventStream(request);
  const from = startRevision(request, sse, watch.resourceVersion) ?? (await ctx.store.revision());
  const release = ctx.streamQuota.acquire(request);

  // Events that arrive before the response has started wait here. Once the store's watch is set up
  // there is no await until `deliver` writes straight to the stream, so none can fall in between.
  const pending: StoreEvent[] = [];
  let deliver = (event: StoreEvent): void => void pending.push(event);
  // The store ended the watch (etcd: its history was compacted while reconnecting): say why in
  // the stream, as Kubernetes does, and close it; the client lists again on Gone.
  let endedBy: StoreError | undefined;
  let ended = (error: StoreError): void => void (endedBy = error);
  // The store is asked for every kind, and the kind filtered here: then `sent` passes every
  // revision, and a bookmark at `sent` is exact however late the store delivers events.
  let stop: () => void;
  try {
    stop = await ctx.store.watch(undefined, from, (event) => deliver(event), (error) => ended(error));
  } catch (error) {
    release();
    throw error;
  }

  let stream: ResponseStream;
  try {
    stream = new ResponseStream(request, reply, ctx.streams, {
      "content-type": sse ? "text/event-stream; charset=utf-8" : "application/x-ndjson; charset=utf-8",
    }, release);
  } catch (error) {
    stop();
    release();
    throw error;
  }
  stream.onClose(stop);
  /** Every change up to this revision has been sent (or did not match). */
  let sent = from;
  const principal = principalOf(request);
  deliver = (event) => {
    sent = event.resourceVersion;
    if (watch.kind !== undefined && event.object.kind !== watch.kind) return;
    if (watch.filter && !watch.filter(event.object)) return;
    const object = visibleTo(principal, event.object);
    // Unredacted, the stored JSON is the object's JSON: no serializing per watcher and event.
    const json = object === event.object && event.json !== undefined ? event.json : JSON.stringify(object);
    stream.write(sse ? sseEvent(event, json) : ndjsonEvent(event, json));
  };
  for (const event of pending.splice(0)) deliver(event);
  ended = (error) => {
    const code = error.code === "Gone" ? "Gone" : "Unavailable";
    stream.write(sse ? `event: ERROR\ndata: ${JSON.stringify({ error: { code, message: error.message } })}\n\n` : `${JSON.stringify({ type: "ERROR", object: { error: { code, message: error.message } } })}\n`);
    stream.end();
  };
  if (endedBy) ended(endedBy);
  stream.every(ctx.heartbeatMs, () => stream.write(sse ? `: ping\nid: ${sent}\n\n` : bookmark(sent)));
  return reply;
}

/** Where a watch starts: SSE's Last-Event-ID wins over ?resourceVersion; undefined means now. */
function startRevision(request: FastifyRequest, sse: boolean, fromQuery: string | undefined): string | undefined {
  const header = request.headers["last-event-id"];
  if (!sse || header === undefined) return fromQuery;
  const lastEventId = Array.isArray(header) ? header[0] : header;
  if (lastEventId === undefined || !REVISION.test(lastEventId)) {
    throw invalid("headers", [{ path: "/last-event-id", message: "must be a revision (a decimal integer)" }]);
  }
  return lastEventId;
}

const ndjsonEvent = (event: StoreEvent, objectJson: string): string => `{"type":${JSON.stringify(event.type)},"object":${objectJson}}\n`;
const bookmark = (resourceVersion: string): string => `${JSON.stringify({ type: "BOOKMARK", object: { metadata: { resourceVersion } } })}\n`;
const sseEvent = (event: StoreEvent, objectJson: string): string => `id: ${event.resourceVersion}\nevent: ${event.type}\ndata: ${objectJson}\n\n`;

/** `GET /api/v1/watch`: changes to objects of every kind. */
export function registerWatchAllRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: Static<typeof WatchAllQuery> }>(
    "/api/v1/watch",
    {
      schema: {
        summary: "Watch changes to objects of every kind",
        tags: ["Watch"],
        querystring: WatchAllQuery,
        response: {
          200: {
            description: "NDJSON watch events, or Server-Sent Events when Accept is text/event-stream",
            content: {
              "application/x-ndjson": { schema: WatchEventSchema },
              "text/event-stream": { schema: { type: "string" } },
            },
          },
          ...errorResponses(400, 401, 410),
        },
      },
    },
    (request, reply) => serveWatch(ctx, request, reply, { kind: undefined, resourceVersion: request.query.resourceVersion }),
  );
}
