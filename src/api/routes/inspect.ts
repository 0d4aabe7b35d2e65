import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { isDigest } from "../../image/image-reference.ts";
import { resolveImage } from "../../image/image-store.ts";
import { inspectImage, type ImageInspection } from "../../image/inspect.ts";
import type { Image } from "../../model/kinds.ts";
import { ApiError } from "../api-error.ts";
import type { ApiContext } from "../context.ts";
import { errorResponses, NameParams } from "../schemas/requests.ts";
import { notFound } from "./read-modify-write.ts";

/**
 * `GET /api/v1/images/:name/inspect`: what `pith inspect` reports for the Image object's digest,
 * read from this host's image store. Read-only. Images are immutable, so an inspection is kept.
 */
const inspections = new Map<string, Promise<ImageInspection>>();

export function registerInspectRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Params: Static<typeof NameParams> }>(
    "/api/v1/images/:name/inspect",
    {
      schema: {
        summary: "Inspect an image: every file and its size, the kernel's options, the capabilities",
        description: "The same facts as `pith inspect --json`, for the Image object's digest, from the control plane host's image store.",
        tags: ["Image"],
        params: NameParams,
        response: {
          200: { description: "the image's inspection", content: { "application/json": { schema: { type: "object" } } } },
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (request) => {
      const { name } = request.params;
      const image = await ctx.store.get<Image>("Image", name);
      if (!image) throw notFound("Image", name);
      const digest = image.spec.digest;
      let inspection = inspections.get(digest);
      if (!inspection) {
        inspection = inspect(digest);
        inspections.set(digest, inspection);
        // Only successes are kept: an image may be built or copied here later.
        inspection.catch(() => inspections.delete(digest));
      }
      return inspection;
    },
  );
}

async function inspect(digest: string): Promise<ImageInspection> {
  if (!isDigest(digest)) throw new ApiError("Invalid", `the Image's spec.digest ${JSON.stringify(digest)} is not a digest (sha256:<64 hex>)`, "recreate the Image object from a build");
  const stored = await resolveImage(digest).catch(() => undefined);
  if (!stored || stored.record.digest !== digest) {
    throw new ApiError("NotFound", `image ${digest} is not in the control plane host's image store`, "build it on this host (pith build), or apply its app so it is built");
  }
  return inspectImage(stored);
}
