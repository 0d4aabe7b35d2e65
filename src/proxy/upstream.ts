import { Agent } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Backend } from "./route.ts";
import type { UpstreamConnector, UpstreamTarget } from "./upstream-connector.ts";

/**
 * The proxy's connection state for one backend: a keep-alive agent (its own pool, so a slow
 * machine cannot starve the others of sockets) whose connections the connector opens, and when
 * the backend last refused a connection.
 */
export class Upstream {
  readonly agent: Agent;
  readonly target: UpstreamTarget;
  readonly connector: UpstreamConnector;
  /** performance.now() until which the balancer avoids it; 0 = healthy. */
  unhealthyUntil = 0;
  /** Connections the connector opened that have not connected yet. */
  readonly #connecting = new WeakSet<Duplex>();

  constructor(backend: Backend, maxSockets: number, connector: UpstreamConnector) {
    const { hostname, port } = backend.url;
    this.target = {
      machine: backend.machine,
      hostname: hostname.startsWith("[") ? hostname.slice(1, -1) : hostname,
      port: port === "" ? 80 : Number(port),
    };
    this.connector = connector;
    // Idle sockets close after 4 s, before the common 5 s server keep-alive timeout (node's default),
    // so a request rarely meets a connection the machine is closing; a Keep-Alive hint shortens it.
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: Math.min(maxSockets, 64), timeout: 4000, scheduling: "lifo" });
    this.agent.createConnection = () => this.connect() as Socket;
    const keepSocketAlive = this.agent.keepSocketAlive.bind(this.agent);
    // A connector's duplex need not be a net.Socket (no setKeepAlive/unref to call).
    this.agent.keepSocketAlive = (socket) => ("setKeepAlive" in socket ? keepSocketAlive(socket) : true);
  }

  get hostname(): string {
    return this.target.hostname;
  }

  get port(): number {
    return this.target.port;
  }

  /** A new connection to the machine, through the connector. */
  connect(): Duplex {
    const socket = this.connector.connect(this.target);
    this.#connecting.add(socket);
    socket.once("connect", () => this.#connecting.delete(socket));
    return socket;
  }

  /** Still connecting: opened through the connector, no 'connect' yet. */
  isConnecting(socket: Duplex): boolean {
    return this.#connecting.has(socket);
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
