import type { Duplex } from "node:stream";
import type { Backend } from "../routes/route.ts";
import { UpstreamConnection } from "./upstream-connection.ts";
import type { UpstreamConnector, UpstreamTarget } from "./upstream-connector.ts";
import { UpstreamTimeout } from "./upstream-errors.ts";

/** An exchange waiting for a connection to the backend. */
export interface Lease {
  onConnection(connection: UpstreamConnection): void;
  /** The connection opened for it failed before it connected. */
  onConnectFailure(error: Error): void;
}

export interface UpstreamOptions {
  /** Connections open (or opening) at once; more requests queue here. */
  maxSockets: number;
  connector: UpstreamConnector;
  connectTimeoutMs: number;
  upstreamTimeoutMs: number;
}

/**
 * Idle connections close after 4 s, before the common 5 s server keep-alive timeout (node's
 * default), so a request rarely meets a connection the machine is closing; a Keep-Alive hint
 * shortens it.
 */
export const IDLE_LIMIT_MS = 4000;
const SWEEP_MS = 1000;

/**
 * The proxy's connections to one backend: its own pool of kept-alive connections (so a slow
 * machine cannot starve the others), reused last-in first-out so the surplus after a burst goes
 * idle and closes; and when the backend last refused a connection.
 */
export class Upstream {
  readonly target: UpstreamTarget;
  /** performance.now() until which the balancer avoids it; 0 = healthy. */
  unhealthyUntil = 0;
  readonly #options: UpstreamOptions;
  readonly #idle: UpstreamConnection[] = [];
  /** Open or opening. */
  #count = 0;
  /** Leases waiting for a free connection (at maxSockets), in arrival order. */
  readonly #queue = new Set<Lease>();
  /** Connections being opened, by the lease they are for. */
  readonly #connecting = new Map<Lease, UpstreamConnection>();
  #retired = false;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(backend: Backend, options: UpstreamOptions) {
    const { hostname, port } = backend.url;
    this.target = {
      machine: backend.machine,
      hostname: hostname.startsWith("[") ? hostname.slice(1, -1) : hostname,
      port: port === "" ? 80 : Number(port),
    };
    this.#options = options;
  }

  /**
   * A connection for one request: an idle one at once (returned), or later through the lease
   * (undefined returned): a new one once connected, or one another request is done with.
   */
  acquire(lease: Lease): UpstreamConnection | undefined {
    const now = performance.now();
    for (let connection = this.#idle.pop(); connection; connection = this.#idle.pop()) {
      if (now - connection.idleSince < connection.idleLimitMs && !connection.closed) return connection;
      connection.destroy(); // idle too long: the machine may be closing it
    }
    if (this.#count < this.#options.maxSockets) this.#open(lease);
    else this.#queue.add(lease);
    return undefined;
  }

  /** The lease's request is gone (its client left): it takes no connection; one being opened for it closes. */
  cancel(lease: Lease): void {
    this.#queue.delete(lease);
    const connection = this.#connecting.get(lease);
    if (!connection) return;
    this.#connecting.delete(lease);
    connection.destroy();
  }

  /** A connection outside the pool, for an upgrade tunnel (through the same connector). */
  connectTunnel(): Duplex {
    return this.#options.connector.connect(this.target);
  }

  /**
   * The backend left its route: idle connections close now, busy ones when their request ends
   * (a machine being drained finishes what it has).
   */
  retire(): void {
    this.#retired = true;
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const connection of this.#idle.splice(0)) connection.destroy();
  }

  /** Open connections, idle ones and leases waiting (for tests). */
  stats(): { open: number; idle: number; queued: number } {
    return { open: this.#count, idle: this.#idle.length, queued: this.#queue.size };
  }

  #open(lease: Lease): void {
    const connector = this.#options.connector;
    let connection: UpstreamConnection;
    try {
      connection = new UpstreamConnection((reader) => connector.connect(this.target, reader), {
        upstreamTimeoutMs: this.#options.upstreamTimeoutMs,
        idleLimitMs: IDLE_LIMIT_MS,
        onEnded: (c) => this.#release(c),
        onClosed: (c) => this.#closed(c),
      });
    } catch (error) {
      process.nextTick(() => lease.onConnectFailure(error as Error));
      return;
    }
    this.#count++;
    const socket = connection.socket;
    this.#connecting.set(lease, connection);
    const ms = this.#options.connectTimeoutMs;
    const timer = setTimeout(() => connection.socket.destroy(new UpstreamTimeout("ECONNECTTIMEOUT", `not connected within ${ms} ms`)), ms);
    const failed = (error: Error): void => {
      clearTimeout(timer);
      if (this.#connecting.get(lease) !== connection) return;
      this.#connecting.delete(lease);
      lease.onConnectFailure(error);
    };
    socket.once("error", failed);
    socket.once("close", () => failed(Object.assign(new Error("the connection closed before it was established"), { code: "ECONNRESET" })));
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeListener("error", failed);
      if (this.#connecting.get(lease) !== connection) return;
      this.#connecting.delete(lease);
      connection.connected = true;
      lease.onConnection(connection);
    });
  }

  /** A response ended and the connection can carry another request. */
  #release(connection: UpstreamConnection): void {
    if (this.#retired || connection.idleLimitMs <= 0) {
      connection.destroy();
      return;
    }
    const next = this.#nextQueued();
    if (next) {
      next.onConnection(connection);
      return;
    }
    connection.idleSince = performance.now();
    this.#idle.push(connection);
    this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_MS).unref();
  }

  #closed(connection: UpstreamConnection): void {
    this.#count--;
    const at = this.#idle.indexOf(connection);
    if (at >= 0) this.#idle.splice(at, 1);
    const next = this.#count < this.#options.maxSockets ? this.#nextQueued() : undefined;
    if (next) this.#open(next);
  }

  #nextQueued(): Lease | undefined {
    if (this.#queue.size === 0) return undefined; // the usual case, without making an iterator
    for (const lease of this.#queue) {
      this.#queue.delete(lease);
      return lease;
    }
    return undefined;
  }

  /** Closes connections idle past their limit (acquire never hands those out; this frees them). */
  #sweep(): void {
    const now = performance.now();
    const idle = this.#idle;
    for (let i = idle.length - 1; i >= 0; i--) {
      const connection = idle[i] as UpstreamConnection;
      if (now - connection.idleSince < connection.idleLimitMs) continue;
      idle.splice(i, 1);
      connection.destroy();
    }
    if (this.#idle.length === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }
}
