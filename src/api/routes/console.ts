import type { Static } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Machine } from "../../model/kinds.ts";
import { LOG_TAIL_BYTES, readLogTail } from "../../shared/file-tail.ts";
import { followFile } from "../../shared/follow-file.ts";
import { ApiError } from "../api-error.ts";
import type { ApiContext } from "../context.ts";
import { ConsoleQuery, errorResponses, NameParams } from "../schemas/requests.ts";
import { ResponseStream } from "../streaming.ts";

/**
 * `GET /api/v1/machines/:name/console`: the newest part of the machine's console log as text (at
 * most LOG_TAIL_BYTES, streamed; the log is rotated by the driver). With ?follow=true the
 * response stays open and carries what is appended, like `tail -f`, until the client goes away or
 * the Machine object is deleted (then the rest of the file is sent and the response ends).
 */
export function registerConsoleRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Params: Static<typeof NameParams>; Querystring: Static<typeof ConsoleQuery> }>(
    "/api/v1/machines/:name/console",
    {
      schema: {
        summary: "Read (or follow) a machine's console log",
        tags: ["Machine"],
        params: NameParams,
        querystring: ConsoleQuery,
        response: {
          200: { description: "the console log", content: { "text/plain": { schema: { type: "string" } } } },
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      const path = await ctx.consoleLogPath?.(name);
      if (path === undefined) {
        throw new ApiError("NotFound", `no console log for machine ${name}`, "GET /api/v1/machines lists the machines");
      }
      if (request.query.follow) return follow(ctx, request, reply, name, path);
      // A machine that has not started yet has no log: that is an empty log, not an error.
      return reply.type("text/plain; charset=utf-8").send(readLogTail(path));
    },
  );
}

async function follow(ctx: ApiContext, request: FastifyRequest, reply: FastifyReply, name: string, path: string): Promise<FastifyReply> {
  const { store } = ctx;
  const release = ctx.streamQuota.acquire(request);
  let deleted = false;
  let onDeleted = (): void => void (deleted = true);
  let stopWatch: () => void;
  try {
    // Watch from a revision read before the machine: a delete after that read cannot be missed.
    const from = await store.revision();
    const machine = await store.get<Machine>("Machine", name);
    deleted = machine === undefined; // a machine that is gone will never append anything
    stopWatch = machine
      ? await store.watch("Machine", from, (event) => {
          if (event.type === "DELETED" && event.object.metadata.name === name) onDeleted();
        })
      : () => {};
  } catch (error) {
    release();
    throw error;
  }

  const stream = new ResponseStream(request, reply, ctx.streams, { "content-type": "text/plain; charset=utf-8" }, release);
  stream.onClose(stopWatch);
  const follower = followFile(path, (chunk) => stream.write(chunk), ctx.consolePollMs, { fromTail: LOG_TAIL_BYTES });
  stream.onClose(() => void follower.stop());
  // stop() reads what was appended last, then the response ends.
  const finish = (): void => void follower.stop().then(() => stream.end());
  if (deleted) finish();
  else onDeleted = finish;
  return reply;
}
