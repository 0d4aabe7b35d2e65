import { isSecretRef, type EnvValue, type Secret, type ServiceStatus } from "../model/kinds.ts";
import type { Resource } from "../model/resource.ts";
import type { Principal } from "./principal.ts";
import { secretForClients } from "./secret-values.ts";

/** What a hidden env value reads as. */
export const HIDDEN_VALUE = "(hidden)";

/**
 * What a principal may see of an object. A Service's or Machine's `spec.env` holds the apps'
 * secrets (API tokens among them: the proxy machine's is one), so only admins see every value;
 * an agent sees the env of the Machines placed on its node, which it needs to start them. Other
 * roles see the keys, each with HIDDEN_VALUE: which settings exist, not what they are. Without
 * this, a read-only token could read the proxy's token out of its Service and tunnel with it.
 */
export function visibleTo<R extends Resource>(principal: Principal | undefined, object: R): R {
  // A Secret's values (sealed or not) reach nobody through an object, admins included: the
  // agent opens them through its own audited route (routes/secret-env.ts).
  if (object.kind === "Secret") return secretForClients(object as unknown as Secret) as unknown as R;
  if (!principal || principal.role === "admin") return object;
  if (object.kind !== "Service" && object.kind !== "Machine") return object;
  const spec = object.spec as { env?: Record<string, EnvValue>; node?: string };
  if (principal.role === "node" && object.kind === "Machine" && spec.node !== undefined && spec.node === principal.node) return object;
  const status = object.kind === "Service" ? hideRevisionEnv(object.status as ServiceStatus) : object.status;
  if ((!spec.env || Object.keys(spec.env).length === 0) && status === object.status) return object;
  return { ...object, spec: spec.env ? { ...spec, env: hideValues(spec.env) } : spec, status };
}

/** Keys stay, values become HIDDEN_VALUE; a secretRef names no value, so it is shown as it is. */
const hideValues = (env: Record<string, EnvValue>): Record<string, EnvValue> =>
  Object.fromEntries(Object.entries(env).map(([key, value]) => [key, isSecretRef(value) ? value : HIDDEN_VALUE]));

/** A service's revision history holds the env of earlier templates: the same rule applies. */
function hideRevisionEnv(status: ServiceStatus): ServiceStatus {
  if (!status.revisions?.some((r) => r.env && Object.keys(r.env).length > 0)) return status;
  return { ...status, revisions: status.revisions.map((r) => (r.env ? { ...r, env: hideValues(r.env) } : r)) };
}
