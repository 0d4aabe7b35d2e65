import type { Static } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import type { Service } from "../../model/kinds.ts";
import { API_VERSION } from "../../model/resource.ts";
import { isAutoscaled } from "../../model/service-rules.ts";
import { ApiError } from "../api-error.ts";
import type { ApiContext } from "../context.ts";
import { KIND_SCHEMAS } from "../schemas/kinds.ts";
import { errorResponses, LoadBody, NameParams, RolloutBody, RolloutParams, ScaleBody } from "../schemas/requests.ts";
import { specAtRevision } from "../../model/revision-history.ts";
import { readModifyWrite } from "./read-modify-write.ts";

/**
 * `POST /api/v1/services/:name/scale {replicas}`: sets spec.replicas, leaving the rest of the spec.
 * `PUT /api/v1/services/:name/load {inFlight, waiting}`: a proxy's load report for the autoscaler.
 */
export function registerServiceRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post<{ Params: Static<typeof NameParams>; Body: Static<typeof ScaleBody> }>(
    "/api/v1/services/:name/scale",
    {
      schema: {
        summary: "Set a service's replica count",
        description: "A service autoscaled with min/max cannot be given a fixed count this way (409): replace its spec instead.",
        tags: ["Service"],
        params: NameParams,
        body: ScaleBody,
        response: { 200: KIND_SCHEMAS.Service.resource, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => {
      const { name } = request.params;
      return readModifyWrite<Service>(ctx.store, "Service", name, undefined, (existing) => {
        if (isAutoscaled(existing.spec)) {
          throw new ApiError(
            "Conflict",
            `Service ${name} is autoscaled (spec.min/max are set), so it has no fixed replica count to scale`,
            `replace its spec with PUT /api/v1/services/${name}: either change min/max, or drop them and set replicas`,
          );
        }
        return {
          apiVersion: API_VERSION,
          kind: "Service",
          metadata: { name, labels: existing.metadata.labels },
          spec: { ...existing.spec, replicas: request.body.replicas },
        };
      });
    },
  );

  app.post<{ Params: Static<typeof RolloutParams>; Body: Static<typeof RolloutBody> }>(
    "/api/v1/services/:name/rollout/:action",
    {
      schema: {
        summary: "Roll a service's machines: restart (a new template, same settings) or undo (back to an earlier template)",
        description:
          "restart sets spec.restartedAt to now, so every machine is replaced under the update strategy. undo sets the spec's image (pinned to its digest), env, startMode and restartedAt to those of status.revisions' entry numbered toRevision, or the one before the current (409 if there is none).",
        tags: ["Service"],
        params: RolloutParams,
        body: RolloutBody,
        response: { 200: KIND_SCHEMAS.Service.resource, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => {
      const { name, action } = request.params;
      const toRevision = request.body?.toRevision;
      return readModifyWrite<Service>(ctx.store, "Service", name, undefined, (existing) => {
        const metadata = { name, labels: existing.metadata.labels };
        if (action === "restart") return { apiVersion: API_VERSION, kind: "Service", metadata, spec: { ...existing.spec, restartedAt: new Date().toISOString() } };
        const revisions = existing.status.revisions ?? [];
        const target = toRevision === undefined ? revisions[1] : revisions.find((r) => r.revision === toRevision);
        if (!target) {
          const known = revisions.map((r) => r.revision).join(", ") || "none yet";
          throw new ApiError(
            "Conflict",
            toRevision === undefined ? `Service ${name} has no revision before the current one to return to` : `Service ${name} has no revision ${toRevision} (kept: ${known})`,
            `pith rollout history ${name} lists the revisions kept`,
          );
        }
        return { apiVersion: API_VERSION, kind: "Service", metadata, spec: specAtRevision(existing.spec, target) };
      });
    },
  );

  app.put<{ Params: Static<typeof NameParams>; Body: Static<typeof LoadBody> }>(
    "/api/v1/services/:name/load",
    {
      schema: {
        summary: "Report a service's load (from a proxy)",
        description: "Ephemeral input for the autoscaler: requests in flight and requests held waiting for a machine. Not stored.",
        tags: ["Service"],
        params: NameParams,
        body: LoadBody,
        response: { 204: { type: "null", description: "accepted" }, ...errorResponses(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      if (!ctx.onLoadReport) throw new ApiError("NotFound", "this control plane has no autoscaler to report load to");
      if (!(await ctx.store.get("Service", name))) throw new ApiError("NotFound", `Service ${name} not found`);
      ctx.onLoadReport(name, request.body);
      return reply.code(204).send();
    },
  );
}
