import type { FastifyReply, FastifyRequest, onResponseAsyncHookHandler } from "fastify";
import { apiRequestSeconds, apiRequests } from "../shared/metrics.ts";

/**
 * Request metrics, labelled by route pattern (`/api/v1/services/:name`), never the raw URL, so
 * the number of series stays bounded. Streaming responses (watches, console follow) are counted
 * when they end, but kept out of the latency histogram: their duration is the client's choice.
 */
const streaming = new WeakSet<FastifyRequest>();

export const markStreaming = (request: FastifyRequest): void => {
  streaming.add(request);
};

export const routeLabel = (request: FastifyRequest): string => request.routeOptions.url ?? "<unmatched>";

export function countRequest(request: FastifyRequest, statusCode: number, seconds?: number): void {
  const route = routeLabel(request);
  apiRequests.inc({ method: request.method, route, status: String(statusCode) });
  if (seconds !== undefined) apiRequestSeconds.observe({ method: request.method, route }, seconds);
}

export const metricsHook: onResponseAsyncHookHandler = async (request: FastifyRequest, reply: FastifyReply) => {
  if (streaming.has(request)) return;
  countRequest(request, reply.statusCode, reply.elapsedTime / 1000);
};
