import type { Machine, Service } from "./kinds.ts";
import { isOfTemplate } from "./template-label.ts";

export interface RolloutProgress {
  done: boolean;
  /** One line for people: what the rollout is waiting for, or that it is done. */
  message: string;
  desired: number;
  /** Ready machines of the current template. */
  updatedReady: number;
  /** Machines of the current template, ready or not. */
  updated: number;
  /** Machines of older templates still running. */
  old: number;
}

/**
 * Where a service's rollout stands, from the service and its machines: done when `desired`
 * machines of the current template are ready and no machine of an older one still runs. The CLI's
 * `pith rollout status` and the GUI's rollout panel both read it from here.
 */
export function rolloutProgress(service: Service, machines: readonly Machine[]): RolloutProgress {
  const { status } = service;
  const desired = status.desired ?? service.spec.replicas ?? service.spec.min ?? 1;
  const alive = machines.filter((m) => m.spec.desiredState === "running" && m.status.phase !== "failed" && m.status.phase !== "stopped");
  const current = alive.filter((m) => isOfTemplate(m, status.templateHash, status.imageDigest));
  const updatedReady = current.filter((m) => m.status.phase === "ready").length;
  const old = alive.length - current.length;
  const counts = { desired, updatedReady, updated: current.length, old };
  const name = service.metadata.name;
  if ((status.observedGeneration ?? 0) < service.metadata.generation) {
    return { done: false, message: `waiting for the controller to see generation ${service.metadata.generation} of ${name}`, ...counts };
  }
  if (status.message) return { done: false, message: `${name}: ${status.message}`, ...counts };
  if (status.crashLoop) return { done: false, message: `${name}: new machines keep failing (${status.crashLoop.lastReason}); the old ones keep serving`, ...counts };
  if (updatedReady >= desired && old === 0) {
    return { done: true, message: `service/${name} rolled out${status.revision ? ` (revision ${status.revision})` : ""}: ${updatedReady} of ${desired} machines ready`, ...counts };
  }
  const left = old > 0 ? `, ${old} old machine${old === 1 ? "" : "s"} still running` : "";
  return { done: false, message: `waiting for the rollout of ${name}: ${updatedReady} of ${desired} updated machines ready${left}`, ...counts };
}
