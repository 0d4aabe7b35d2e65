import type { ServiceLoad } from "./exchange/service-state.ts";
import type { ProxyEngine, ProxyEngineOptions } from "./proxy-engine.ts";
import { createProxyServer, type ProxyServer } from "./proxy-server.ts";

/** Node's HTTP server is the whole data path: every request is served in this process. */
export class NodeEngine implements ProxyEngine {
  readonly server: ProxyServer;

  constructor(options: ProxyEngineOptions) {
    this.server = createProxyServer({ ...options.server, routes: options.routes });
  }

  listen(host: string, port: number): Promise<number> {
    return this.server.listenOn(host, port);
  }

  load(): Record<string, ServiceLoad> {
    return this.server.proxyLoad();
  }

  close(): Promise<void> {
    return this.server.closeNow();
  }
}
