import type { Static } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { readFile } from "node:fs/promises";
import type { Machine } from "../../model/kinds.ts";
import { followFile } from "../../shared/follow-file.ts";
import { ApiError } from "../api-error.ts";
import type { ApiContext } from "../context.ts";
import { ConsoleQuery, errorResponses, NameParams } from "../schemas/requests.ts";
import { ResponseStream } from "../streaming.ts";

/**
 * `GET /api/v1/machines/:name/console`: the machine's console log as text. With ?follow=true the
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
      const log = await readFile(path).catch((error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return Buffer.alloc(0);
        throw error;
      });
      return reply.type("text/plain; charset=utf-8").send(log);
    },
  );
}

async function follow(ctx: ApiContext, request: FastifyRequest, reply: FastifyReply, name: string, path: string): Promise<FastifyReply> {
  const machine = await ctx.store.get<Machine>("Machine", name);
  const stream = new ResponseStream(request, reply, ctx.streams, { "content-type": "text/plain; charset=utf-8" });
  const follower = followFile(path, (chunk) => stream.write(chunk), ctx.consolePollMs);
  const finish = (): void => void follower.stop().then(() => stream.end());
  stream.onClose(() => void follower.stop());
  if (!machine) {
    finish(); // nothing will ever be appended: send what there is and end
    return reply;
  }
  // Watching from the revision read means a delete after that read cannot be missed.
  const stop = await ctx.store.watch("Machine", machine.metadata.resourceVersion, (event) => {
    if (event.type === "DELETED" && event.object.metadata.name === name) finish();
  });
  stream.onClose(stop);
  return reply;
}
