import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The control plane's Prometheus metrics, in one registry served at /metrics. Each subsystem
 * updates its own; the names say what they measure.
 */
export const metricsRegistry = new Registry();

/** Every metric is registered in metricsRegistry; these say only what differs between them. */
const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Counter({ name, help, labelNames, registers: [metricsRegistry] });
const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Gauge({ name, help, labelNames, registers: [metricsRegistry] });
const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]) =>
  new Histogram({ name, help, labelNames, buckets, registers: [metricsRegistry] });

export const apiRequests = counter("pith_api_requests_total", "API requests by method, route and status code", ["method", "route", "status"] as const);

export const apiRequestSeconds = histogram("pith_api_request_duration_seconds", "API request latency by method and route", ["method", "route"] as const, [
  0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5,
]);

export const machinesByPhase = gauge("pith_machines", "Machines by phase", ["phase"] as const);

export const bootToReadySeconds = histogram("pith_machine_boot_to_ready_seconds", "From asking the hypervisor for a machine until its app is ready", ["image"] as const, [
  0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32,
]);

export const reconcileSeconds = histogram("pith_reconcile_duration_seconds", "Reconcile latency by controller", ["controller"] as const, [
  0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,
]);

export const reconcileErrors = counter("pith_reconcile_errors_total", "Reconciles that ended in an error, by controller", ["controller"] as const);

export const autoscalerDesired = gauge("pith_autoscaler_desired_machines", "Machines the autoscaler wants for each min/max service", ["service"] as const);

export const controllersLeader = gauge("pith_controllers_leader", "1 while this control plane runs the controllers (the elected leader among those sharing an etcd store), else 0", [] as const);
