import type { ServiceLoad } from "./exchange/service-state.ts";
import type { ProxyServer, ProxyServerOptions } from "./proxy-server.ts";
import type { RouteSource } from "./routes/route.ts";

/** The data paths `pith proxy --engine` and `pith up --proxy-engine` choose from. */
export const PROXY_ENGINES = ["node", "haproxy"] as const;
export type ProxyEngineName = (typeof PROXY_ENGINES)[number];

/**
 * What serves the proxy's port. Pith's node proxy (a ProxyServer) is in every engine: the whole
 * data path in the node engine; behind HAProxy in the haproxy engine, for what HAProxy cannot do
 * (holding requests while a machine boots, 404s). Chosen once, then used only through this.
 */
export interface ProxyEngine {
  /** Pith's node proxy. */
  readonly server: ProxyServer;
  /** Serves host:port (0: any free port); resolves with the port once requests are served there. */
  listen(host: string, port: number): Promise<number>;
  /** Per-service load as the autoscaler sees it: every request in flight or held, whoever serves it. */
  load(): Record<string, ServiceLoad>;
  /** Stops serving and releases what the engine started; connections still open are cut. */
  close(): Promise<void>;
}

/** What every engine is made from. */
export interface ProxyEngineOptions {
  /** Host -> service -> ready machines (subscribed to at construction: make the engine before the routes start). */
  routes: RouteSource;
  /** Options of Pith's node proxy, other than its routes. */
  server: Omit<ProxyServerOptions, "routes">;
}
