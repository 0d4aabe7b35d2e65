import type { ServiceSpec } from "../../model/kinds.ts";
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
  for (const name of Object.keys(spec.env ?? {})) {
    if (name.startsWith("PITH_")) {
      details.push({ path: `${at}/env/${escapePointer(name)}`, message: `invalid name ${JSON.stringify(name)}: names starting with PITH_ are reserved for Pith` });
    }
  }
  return details;
}

const escapePointer = (segment: string): string => segment.replaceAll("~", "~0").replaceAll("/", "~1");
