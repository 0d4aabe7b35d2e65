import { createHash } from "node:crypto";
import { canonicalJson } from "../shared/canonical-json.ts";
import { isSecretRef, type ImageSpec, type Secret, type SecretKeyRef, type ServiceSpec, type StartMode } from "./kinds.ts";

export { isOfTemplate, TEMPLATE_HASH_LABEL } from "./template-label.ts";

/**
 * Everything a service's machine is made from. Its hash is the machine's identity for rollouts:
 * machines whose hash differs from the service's current one are replaced under the update
 * strategy, whatever the difference (image, env, a Secret's value, start mode, memory, vCPUs, a
 * `pith rollout restart`). A Secret's value enters only as its keyed hash, never as the value.
 */
export interface MachineTemplate {
  image: string;
  memoryMiB: number;
  vcpus: number;
  env: Record<string, string>;
  secretEnv: Record<string, SecretKeyRef>;
  /** The hash of each secretEnv value now: a changed Secret makes a new template. */
  secretHashes: Record<string, string>;
  startMode: StartMode;
  restartedAt?: string;
}

export type TemplateOutcome = { template: MachineTemplate; hash: string } | { missing: string[] };

/**
 * The template for a service's spec and resolved image, or what is missing: a secretRef to a
 * Secret or key that does not exist. (Like a Kubernetes pod whose secret is missing, the service
 * is accepted; its new machines wait, and its status says why.)
 */
export function machineTemplate(spec: ServiceSpec, image: ImageSpec, secretNamed: (name: string) => Secret | undefined): TemplateOutcome {
  const env: Record<string, string> = {};
  const secretEnv: Record<string, SecretKeyRef> = {};
  const secretHashes: Record<string, string> = {};
  const missing: string[] = [];
  for (const [variable, value] of Object.entries(spec.env ?? {})) {
    if (!isSecretRef(value)) {
      env[variable] = value;
      continue;
    }
    const { name, key } = value.secretRef;
    const secret = secretNamed(name);
    const keys = secret?.spec.keys;
    const hash = keys && Object.hasOwn(keys, key) ? keys[key]?.hash : undefined;
    if (hash === undefined) {
      missing.push(`env ${variable}: ${secret ? `Secret ${name} has no key ${key}` : `Secret ${name} not found`}`);
      continue;
    }
    secretEnv[variable] = { name, key };
    secretHashes[variable] = hash;
  }
  if (missing.length > 0) return { missing };
  const template: MachineTemplate = {
    image: image.digest,
    memoryMiB: image.memoryMiB,
    vcpus: image.vcpus,
    env,
    secretEnv,
    secretHashes,
    startMode: spec.startMode ?? "boot",
    ...(spec.restartedAt ? { restartedAt: spec.restartedAt } : {}),
  };
  return { template, hash: templateHash(template) };
}

export const templateHash = (template: MachineTemplate): string => createHash("sha256").update(canonicalJson(template)).digest("hex").slice(0, 16);

/** The Secrets a service's env names (to roll it when one of them changes). */
export const secretsUsedBy = (spec: ServiceSpec): string[] =>
  [...new Set(Object.values(spec.env ?? {}).flatMap((value) => (isSecretRef(value) ? [value.secretRef.name] : [])))];

