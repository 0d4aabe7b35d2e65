import { Counter, Gauge, Histogram } from "prom-client";
import { metricsRegistry } from "../../shared/metrics.ts";

/**
 * The proxy's Prometheus metrics, on the control plane's registry. The request counter and the
 * in-flight gauge are kept as plain numbers per service and handed to prom-client when the
 * registry is read (collect): each prom-client update hashes its labels, and per request that
 * was a few percent of the proxy's CPU.
 */

/** Every ServiceMetrics whose numbers a scrape must collect. */
const live = new Set<ServiceMetrics>();

export const proxyRequests: Counter<"service" | "status"> = new Counter({
  name: "pith_proxy_requests_total",
  help: "Requests through the proxy by service and response status (499: the client went away first)",
  labelNames: ["service", "status"] as const,
  registers: [metricsRegistry],
  collect() {
    for (const metrics of live) metrics.flush();
  },
});

export const proxyRequestSeconds = new Histogram({
  name: "pith_proxy_request_duration_seconds",
  help: "From a request's arrival until its response ended, including time held waiting for a machine",
  labelNames: ["service"] as const,
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [metricsRegistry],
});

export const proxyUpstreamErrors = new Counter({
  name: "pith_proxy_upstream_errors_total",
  help: "Failed attempts to reach a machine, by service and kind (refused, connect_timeout, reset, timeout, error)",
  labelNames: ["service", "kind"] as const,
  registers: [metricsRegistry],
});

export const proxyHeldRequests = new Gauge({
  name: "pith_proxy_held_requests",
  help: "Requests waiting for a ready machine of their service",
  labelNames: ["service"] as const,
  registers: [metricsRegistry],
});

export const proxyInFlight: Gauge<"service"> = new Gauge({
  name: "pith_proxy_in_flight",
  help: "Requests and upgraded connections being served by a machine of the service",
  labelNames: ["service"] as const,
  registers: [metricsRegistry],
  collect() {
    // Summed by name: two proxies in one process (tests) may each have a state for one service.
    const byService = new Map<string, number>();
    for (const metrics of live) byService.set(metrics.service, (byService.get(metrics.service) ?? 0) + metrics.inFlight);
    for (const [service, inFlight] of byService) this.set({ service }, inFlight);
  },
});

/** The label value for requests that matched no service. */
export const UNROUTED = "_unrouted";

/** A service's metrics: children resolved once (labels() hashes its arguments on every call), counts kept until a scrape. */
export class ServiceMetrics {
  readonly service: string;
  readonly duration: Histogram.Internal<"service">;
  readonly held: Gauge.Internal<"service">;
  /** Requests (and tunnels) at its machines now; read by the in-flight gauge's collect. */
  inFlight = 0;
  /** Requests counted since the last flush, by status. */
  readonly #requests = new Map<number, { counter: Counter.Internal; pending: number }>();
  readonly #errors = new Map<string, Counter.Internal>();

  constructor(service: string) {
    this.service = service;
    this.duration = proxyRequestSeconds.labels(service);
    this.held = proxyHeldRequests.labels(service);
    live.add(this);
  }

  request(status: number, seconds: number): void {
    let entry = this.#requests.get(status);
    if (!entry) this.#requests.set(status, (entry = { counter: proxyRequests.labels(this.service, String(status)), pending: 0 }));
    entry.pending++;
    this.duration.observe(seconds);
  }

  /** Hands the counts kept since the last flush to prom-client. */
  flush(): void {
    for (const entry of this.#requests.values()) {
      if (entry.pending === 0) continue;
      entry.counter.inc(entry.pending);
      entry.pending = 0;
    }
  }

  upstreamError(kind: string): void {
    let counter = this.#errors.get(kind);
    if (!counter) this.#errors.set(kind, (counter = proxyUpstreamErrors.labels(this.service, kind)));
    counter.inc();
  }

  /** Drops the gauges of a service that is gone (counters and histograms keep their history). */
  remove(): void {
    this.dispose();
    proxyHeldRequests.remove(this.service);
    proxyInFlight.remove(this.service);
  }

  /** No longer collected (its proxy closed): what it counted is handed on first. */
  dispose(): void {
    this.flush();
    live.delete(this);
  }
}
