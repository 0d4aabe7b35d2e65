import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The control plane's Prometheus metrics, in one registry served at /metrics. Each subsystem
 * updates its own; the names say what they measure.
 */
export const metricsRegistry = new Registry();

export const apiRequests = new Counter({
  name: "pith_api_requests_total",
  help: "API requests by method, route and status code",
  labelNames: ["method", "route", "status"] as const,
  registers: [metricsRegistry],
});

export const apiRequestSeconds = new Histogram({
  name: "pith_api_request_duration_seconds",
  help: "API request latency by method and route",
  labelNames: ["method", "route"] as const,
  buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  registers: [metricsRegistry],
});

export const machinesByPhase = new Gauge({
  name: "pith_machines",
  help: "Machines by phase",
  labelNames: ["phase"] as const,
  registers: [metricsRegistry],
});

export const bootToReadySeconds = new Histogram({
  name: "pith_machine_boot_to_ready_seconds",
  help: "From asking the hypervisor for a machine until its app is ready",
  labelNames: ["image"] as const,
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32],
  registers: [metricsRegistry],
});

export const reconcileSeconds = new Histogram({
  name: "pith_reconcile_duration_seconds",
  help: "Reconcile latency by controller",
  labelNames: ["controller"] as const,
  buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
  registers: [metricsRegistry],
});

export const reconcileErrors = new Counter({
  name: "pith_reconcile_errors_total",
  help: "Reconciles that ended in an error, by controller",
  labelNames: ["controller"] as const,
  registers: [metricsRegistry],
});

export const autoscalerDesired = new Gauge({
  name: "pith_autoscaler_desired_machines",
  help: "Machines the autoscaler wants for each min/max service",
  labelNames: ["service"] as const,
  registers: [metricsRegistry],
});

export const controllersLeader = new Gauge({
  name: "pith_controllers_leader",
  help: "1 while this control plane runs the controllers (the elected leader among those sharing an etcd store), else 0",
  registers: [metricsRegistry],
});
