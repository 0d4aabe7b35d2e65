import { pickBackend } from "../routes/balancer.ts";
import type { Backend, Route } from "../routes/route.ts";
import type { UpstreamConnector } from "../upstream/upstream-connector.ts";
import { Upstream } from "../upstream/upstream.ts";
import { ServiceMetrics } from "./proxy-metrics.ts";

/** A service's load as the autoscaler sees it. */
export interface ServiceLoad {
  /** Requests (and upgraded connections) being served by its machines. */
  inFlight: number;
  /** Requests held until a machine is ready. */
  waiting: number;
  /** Machines taking requests. */
  backends: number;
}

export type DemandListener = (service: string, load: { inFlight: number; waiting: number }) => void;

/** A request held until its service has a backend it can use. */
export interface Waiter {
  heldSince: number;
  heldMs: number;
  holdTimer: NodeJS.Timeout | undefined;
  /** A backend appeared: try again (it may hold again if none fits). */
  dispatch(): void;
  /** Held for the whole bound. */
  holdExpired(): void;
  /** The service was deleted. */
  routeGone(): void;
}

export interface ServiceStateOptions {
  holdTimeoutMs: number;
  maxSocketsPerBackend: number;
  connector: UpstreamConnector;
  connectTimeoutMs: number;
  upstreamTimeoutMs: number;
  onDemand: DemandListener | undefined;
  onError: (error: unknown) => void;
}

/**
 * The proxy's view of one service: its current route, its load, the requests held for it (all
 * waiting for the same backends, never starting anything: demand is only reported), and the
 * connection pools of its backends.
 */
export class ServiceState {
  readonly name: string;
  route: Route | undefined;
  inFlight = 0;
  readonly metrics: ServiceMetrics;
  readonly #upstreams = new Map<Backend, Upstream>();
  readonly #waiters = new Set<Waiter>();
  readonly #options: ServiceStateOptions;
  #turn = 0;

  constructor(name: string, route: Route | undefined, options: ServiceStateOptions) {
    this.name = name;
    this.route = route;
    this.#options = options;
    this.metrics = new ServiceMetrics(name);
  }

  get waiting(): number {
    return this.#waiters.size;
  }

  load(): ServiceLoad {
    return { inFlight: this.inFlight, waiting: this.#waiters.size, backends: this.route?.backends.length ?? 0 };
  }

  /** Nothing in flight or held: the state can go once the service does. */
  get idle(): boolean {
    return this.inFlight === 0 && this.#waiters.size === 0;
  }

  /** The backend for the next attempt, or undefined if the route has none usable. */
  pick(excluded: ReadonlySet<Backend> | undefined): Backend | undefined {
    const backends = this.route?.backends;
    if (!backends || backends.length === 0) return undefined;
    this.#turn = (this.#turn + 1) >>> 0;
    return pickBackend(backends, this.#turn, excluded, this.#upstreams, performance.now());
  }

  upstream(backend: Backend): Upstream {
    let upstream = this.#upstreams.get(backend);
    if (!upstream) {
      const { maxSocketsPerBackend: maxSockets, connector, connectTimeoutMs, upstreamTimeoutMs } = this.#options;
      upstream = new Upstream(backend, { maxSockets, connector, connectTimeoutMs, upstreamTimeoutMs });
      this.#upstreams.set(backend, upstream);
    }
    return upstream;
  }

  markUnhealthy(backend: Backend, forMs: number): void {
    this.upstream(backend).unhealthyUntil = performance.now() + forMs;
  }

  attemptStarted(backend: Backend): void {
    backend.inFlight++;
    this.inFlight++;
    this.metrics.inFlight++;
  }

  attemptEnded(backend: Backend): void {
    backend.inFlight--;
    this.inFlight--;
    this.metrics.inFlight--;
  }

  /** Holds a request until a backend appears, for what is left of the hold bound. */
  hold(waiter: Waiter): void {
    const left = this.#options.holdTimeoutMs - waiter.heldMs;
    if (left <= 0) {
      waiter.holdExpired();
      return;
    }
    waiter.heldSince = performance.now();
    waiter.holdTimer = setTimeout(() => {
      this.unhold(waiter);
      waiter.holdExpired();
    }, left);
    this.#waiters.add(waiter);
    this.#waitingChanged();
  }

  /** Ends a hold (served, expired, or the client left); a no-op if it is not held. */
  unhold(waiter: Waiter): void {
    if (!this.#release(waiter)) return;
    this.#waitingChanged();
  }

  /** The route table changed this service: new backends serve the held requests; gone ones lose their pools. */
  routeChanged(route: Route | undefined): void {
    this.route = route;
    for (const [backend, upstream] of this.#upstreams) {
      if (route?.backends.includes(backend)) continue;
      upstream.retire();
      this.#upstreams.delete(backend);
    }
    if (this.#waiters.size === 0 || (route && route.backends.length === 0)) return;
    const waiters = [...this.#waiters];
    for (const waiter of waiters) this.#release(waiter);
    for (const waiter of waiters) {
      if (route) waiter.dispatch();
      else waiter.routeGone();
    }
    // After the dispatch, so the held requests' connections are on their way before the report's
    // own request is made. One that had to wait again was reported by its hold.
    if (this.#waiters.size === 0) this.#waitingChanged();
  }

  /** The proxy is closing: pools close, held requests are let go (their clients get closed by the server). */
  close(): void {
    for (const upstream of this.#upstreams.values()) upstream.retire();
    this.#upstreams.clear();
    for (const waiter of this.#waiters) clearTimeout(waiter.holdTimer);
  }

  #release(waiter: Waiter): boolean {
    if (!this.#waiters.delete(waiter)) return false;
    clearTimeout(waiter.holdTimer);
    waiter.holdTimer = undefined;
    waiter.heldMs += performance.now() - waiter.heldSince;
    return true;
  }

  #waitingChanged(): void {
    this.metrics.held.set(this.#waiters.size);
    const onDemand = this.#options.onDemand;
    if (!onDemand) return;
    try {
      onDemand(this.name, { inFlight: this.inFlight, waiting: this.#waiters.size });
    } catch (error) {
      this.#options.onError(error);
    }
  }
}
