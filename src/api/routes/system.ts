import type { FastifyInstance } from "fastify";
import { metricsRegistry } from "../../shared/metrics.ts";
import { errorResponses, HealthBody } from "../schemas/requests.ts";

/** Health (the only unauthenticated route), the OpenAPI document, Prometheus metrics. */
export function registerSystemRoutes(app: FastifyInstance): void {
  app.get(
    "/healthz",
    { schema: { summary: "Liveness: answers without a token", tags: ["System"], security: [], response: { 200: { ...HealthBody, description: "the API server is up" } } } },
    async () => ({ ok: true }),
  );

  app.get(
    "/openapi.json",
    {
      schema: {
        summary: "This API's OpenAPI 3 document",
        tags: ["System"],
        response: { 200: { description: "OpenAPI 3.1 document", content: { "application/json": { schema: { type: "object" } } } }, ...errorResponses(401) },
      },
    },
    async () => app.swagger(),
  );

  app.get(
    "/metrics",
    {
      schema: {
        summary: "Prometheus metrics",
        tags: ["System"],
        response: { 200: { description: "Prometheus text format", content: { "text/plain": { schema: { type: "string" } } } }, ...errorResponses(401) },
      },
    },
    async (_request, reply) => reply.type(metricsRegistry.contentType).send(await metricsRegistry.metrics()),
  );
}
