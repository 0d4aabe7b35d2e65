import { Agent } from "node:http";
import type { Backend } from "./route.ts";

/**
 * The proxy's connection state for one backend: a keep-alive agent (its own pool, so a slow
 * machine cannot starve the others of sockets) and when it last refused a connection.
 */
export class Upstream {
  readonly agent: Agent;
  readonly hostname: string;
  readonly port: number;
  /** performance.now() until which the balancer avoids it; 0 = healthy. */
  unhealthyUntil = 0;

  constructor(backend: Backend, maxSockets: number) {
    const { hostname, port } = backend.url;
    this.hostname = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname;
    this.port = port === "" ? 80 : Number(port);
    // Idle sockets close after 4 s, before the common 5 s server keep-alive timeout (node's default),
    // so a request rarely meets a connection the machine is closing; a Keep-Alive hint shortens it.
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: Math.min(maxSockets, 64), timeout: 4000, scheduling: "lifo" });
  }

  /**
   * The backend left its route: idle connections close now, busy ones when their request ends
   * (a machine being drained finishes what it has).
   */
  retire(): void {
    this.agent.keepSocketAlive = () => false;
    for (const sockets of Object.values(this.agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
  }
}
