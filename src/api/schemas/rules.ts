import { envProblems } from "../../model/env-rules.ts";
import { isSecretRef, type EnvValue, type MachineSpec, type NodeSpec, type SecretSpec, type ServiceSpec } from "../../model/kinds.ts";
import { nodeAddressProblem } from "../../model/node-address.ts";
import { serviceSpecProblems } from "../../model/service-rules.ts";
import type { ErrorDetail } from "../api-error.ts";

/**
 * Rules JSON Schema cannot state, run after a body matched its schema (so the shapes are known).
 * Each returns the problems found, with paths relative to the body.
 */

export function serviceSpecRules(spec: ServiceSpec, at = "/spec"): ErrorDetail[] {
  const details: ErrorDetail[] = serviceSpecProblems(spec).map((p) => ({ path: `${at}/${p.field}`, message: p.message }));
  if (spec.volumes === "single" && ((spec.replicas ?? 1) > 1 || (spec.max ?? 0) > 1)) {
    details.push({ path: `${at}/volumes`, message: "single: one shared volume has one writer, so at most one machine (replicas or max <= 1)" });
  }
  details.push(...envRules(plainEnv(spec.env), `${at}/env`));
  return details;
}

/** The values a service sets itself; secretRef values are checked when the Secret is written. */
const plainEnv = (env: Record<string, EnvValue> | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(env ?? {}).filter((entry): entry is [string, string] => !isSecretRef(entry[1])));

/** A client sends values; the hashes and sealed values are the server's to write. */
export function secretSpecRules(spec: SecretSpec, at = "/spec"): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  for (const field of ["keys", "sealed"] as const) {
    if (spec[field] !== undefined) details.push({ path: `${at}/${field}`, message: "is set by the server: send the values as spec.stringData (all of them: a write replaces the Secret's keys)" });
  }
  const bytes = Object.entries(spec.stringData ?? {}).reduce((sum, [k, v]) => sum + new TextEncoder().encode(k + v).length, 0);
  if (bytes > 16 * 1024) details.push({ path: `${at}/stringData`, message: `the values take ${bytes} bytes together (at most 16384, the most env a machine takes)` });
  return details;
}

export function machineSpecRules(spec: MachineSpec, at = "/spec"): ErrorDetail[] {
  return envRules(spec.env, `${at}/env`);
}

export function nodeSpecRules(spec: NodeSpec, at = "/spec"): ErrorDetail[] {
  const problem = spec.address === undefined ? undefined : nodeAddressProblem(spec.address);
  return problem ? [{ path: `${at}/address`, message: problem }] : [];
}

/** What the schema cannot count: UTF-8 bytes, the total size; and the reserved PITH_ names. */
function envRules(env: Record<string, string> | undefined, at: string): ErrorDetail[] {
  return envProblems(env ?? {}).map((p) => ({
    path: p.name === undefined ? at : `${at}/${escapePointer(p.name)}`,
    message: p.name === undefined ? `${p.message}: ${p.hint}` : `invalid ${JSON.stringify(p.name)}: ${p.message}`,
  }));
}

const escapePointer = (segment: string): string => segment.replaceAll("~", "~0").replaceAll("/", "~1");
