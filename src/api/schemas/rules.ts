import { envProblems } from "../../model/env-rules.ts";
import type { MachineSpec, ServiceSpec } from "../../model/kinds.ts";
import { serviceSpecProblems } from "../../model/service-rules.ts";
import type { ErrorDetail } from "../api-error.ts";

/**
 * Rules JSON Schema cannot state, run after a body matched its schema (so the shapes are known).
 * Each returns the problems found, with paths relative to the body.
 */

export function serviceSpecRules(spec: ServiceSpec, at = "/spec"): ErrorDetail[] {
  return [...serviceSpecProblems(spec).map((p) => ({ path: `${at}/${p.field}`, message: p.message })), ...envRules(spec.env, `${at}/env`)];
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
