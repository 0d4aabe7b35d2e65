import { Counter, Gauge, Histogram } from "prom-client";
import { metricsRegistry } from "../shared/metrics.ts";

/** The proxy's Prometheus metrics, on the control plane's registry. */

export const proxyRequests = new Counter({
  name: "pith_proxy_requests_total",
  help: "Requests through the proxy by service and response status (499: the client went away first)",
  labelNames: ["service", "status"] as const,
  registers: [metricsRegistry],
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

export const proxyInFlight = new Gauge({
  name: "pith_proxy_in_flight",
  help: "Requests and upgraded connections being served by a machine of the service",
  labelNames: ["service"] as const,
  registers: [metricsRegistry],
});

/** The label value for requests that matched no service. */
export const UNROUTED = "_unrouted";

/** A service's metric children, resolved once (labels() hashes its arguments on every call). */
export class ServiceMetrics {
  readonly duration: Histogram.Internal<"service">;
  readonly held: Gauge.Internal<"service">;
  readonly inFlight: Gauge.Internal<"service">;
  readonly #service: string;
  readonly #requests = new Map<number, Counter.Internal>();
  readonly #errors = new Map<string, Counter.Internal>();

  constructor(service: string) {
    this.#service = service;
    this.duration = proxyRequestSeconds.labels(service);
    this.held = proxyHeldRequests.labels(service);
    this.inFlight = proxyInFlight.labels(service);
  }

  request(status: number, seconds: number): void {
    let counter = this.#requests.get(status);
    if (!counter) this.#requests.set(status, (counter = proxyRequests.labels(this.#service, String(status))));
    counter.inc();
    this.duration.observe(seconds);
  }

  upstreamError(kind: string): void {
    let counter = this.#errors.get(kind);
    if (!counter) this.#errors.set(kind, (counter = proxyUpstreamErrors.labels(this.#service, kind)));
    counter.inc();
  }

  /** Drops the gauges of a service that is gone (counters and histograms keep their history). */
  remove(): void {
    proxyHeldRequests.remove(this.#service);
    proxyInFlight.remove(this.#service);
  }
}
