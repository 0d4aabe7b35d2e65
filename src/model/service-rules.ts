import type { Machine, Service, ServiceSpec } from "./kinds.ts";
import { SERVICE_LABEL } from "./labels.ts";

/**
 * What a Service's fields mean together, for everyone who reads them: the API's validation, the
 * reconciler, the scale route, the CLI's and the GUI's views. Pure, with no server code, so the
 * GUI bundles the same rules.
 */

/** Machines a service without `replicas` or min/max gets. */
export const DEFAULT_REPLICAS = 1;

/** min/max instead of a fixed count: the autoscaler decides how many machines run. */
export const isAutoscaled = (spec: ServiceSpec): boolean => spec.replicas === undefined && (spec.min !== undefined || spec.max !== undefined);

/** The machine count a service that is not autoscaled declares. */
export const declaredReplicas = (spec: ServiceSpec): number => spec.replicas ?? DEFAULT_REPLICAS;

/**
 * How many machines a service should have: what its reconciler last decided (status.desired),
 * else what the spec says before any decision (an autoscaled service starts at min).
 */
export function desiredMachines(service: Pick<Service, "spec"> & { status?: Service["status"] }): number {
  const decided = service.status?.desired;
  if (decided !== undefined) return decided;
  return isAutoscaled(service.spec) ? (service.spec.min ?? 0) : declaredReplicas(service.spec);
}

/** The service a machine belongs to: the label its reconciler sets, else the spec's field. */
export const serviceOf = (machine: Pick<Machine, "metadata" | "spec">): string | undefined => machine.metadata.labels[SERVICE_LABEL] ?? machine.spec.service;

/** Warm machines per service and node: each holds its RAM while paused. */
export const MAX_WARM_MACHINES = 16;

/** The warm pool a service asks each node for (0: none). */
export const warmMachines = (spec: Pick<ServiceSpec, "warm" | "startMode">): number => (spec.startMode === "snapshot" ? (spec.warm ?? 0) : 0);

/** A rule a spec broke: the field (under spec) and what is wrong with it. */
export interface SpecProblem {
  field: keyof ServiceSpec;
  message: string;
}

/** The rules between a Service's fields that a JSON Schema cannot state (the schema checks each field alone). */
export function serviceSpecProblems(spec: ServiceSpec): SpecProblem[] {
  const problems: SpecProblem[] = [];
  if (spec.replicas !== undefined && (spec.min !== undefined || spec.max !== undefined)) {
    problems.push({ field: "replicas", message: "must not be set together with min/max: use a fixed replicas count, or min and max" });
  }
  if (spec.min !== undefined && spec.max !== undefined && spec.min > spec.max) {
    problems.push({ field: "min", message: `must be <= max (${spec.max})` });
  }
  if ((spec.warm ?? 0) > 0 && spec.startMode !== "snapshot") {
    problems.push({ field: "warm", message: "warm machines are restored from the service's snapshot: set startMode: snapshot, or remove warm" });
  }
  return problems;
}
