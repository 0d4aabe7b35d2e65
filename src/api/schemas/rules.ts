import { envProblems } from "../../model/env-rules.ts";
import type { MachineSpec, ServiceSpec } from "../../model/kinds.ts";
import type { ErrorDetail } from "../api-error.ts";

/**
 * Rules JSON Schema cannot state, run after a body matched its schema (so the shapes are known).
 * Each returns the problems found, with paths relative to the body.
 */

export function serviceSpecRules(spec: ServiceSpec, at = "/spec"): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  if (spec.replicas !== undefined && (spec.min !== undefined || spec.max !== undefined)) {
    details.push({ path: `${at}/replicas`, message: "must not be set together with min/max: use a fixed replicas count, or min and max" });
  }
  if (spec.min !== undefined && spec.max !== undefined && spec.min > spec.max) {
    details.push({ path: `${at}/min`, message: `must be <= max (${spec.max})` });
  }
  if (spec.volumes === "single" && ((spec.replicas ?? 1) > 1 || (spec.max ?? 0) > 1)) {
    details.push({ path: `${at}/volumes`, message: "single: one shared volume has one writer, so at most one machine (replicas or max <= 1)" });
  }
  details.push(...envRules(spec.env, `${at}/env`));
  return details;
}

export function machineSpecRules(spec: MachineSpec, at = "/spec"): ErrorDetail[] {
  return envRules(spec.env, `${at}/env`);
}

/** What the schema cannot count: UTF-8 bytes, the total size; and the reserved PITH_ names. */
function envRules(env: Record<string, string> | undefined, at: string): ErrorDetail[] {
  return envProblems(env ?? {}).map((p) => ({
    path: p.name === undefined ? at : `${at}/${escapePointer(p.name)}`,
    message: p.name === undefined ? `${p.message}: ${p.hint}` : `invalid ${JSON.stringify(p.name)}: ${p.message}`,
  }));
}

const escapePointer = (segment: string): string => segment.replaceAll("~", "~0").replaceAll("/", "~1");
