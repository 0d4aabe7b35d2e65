import { type Backend, normaliseHost, type Route, type RouteSource } from "../../src/proxy/routes/route.ts";

/**
 * What a RouteTable answers for one service with one ready machine, without a control plane:
 * `host` routes to `backendUrl`, every other host to nothing, and it never changes.
 */
export function staticRoutes(backendUrl: string, host: string): RouteSource {
  const backend: Backend = { machine: "bench-backend", url: new URL(backendUrl), inFlight: 0 };
  const route: Route = { service: "bench", backends: [backend], minZero: false };
  const routeHost = normaliseHost(host);
  return {
    lookup: (requested) => (normaliseHost(requested) === routeHost ? route : undefined),
    onChange: () => () => undefined,
  };
}
