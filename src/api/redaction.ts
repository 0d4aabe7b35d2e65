import type { Resource } from "../model/resource.ts";
import type { Principal } from "./principal.ts";

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
  if (!principal || principal.role === "admin") return object;
  if (object.kind !== "Service" && object.kind !== "Machine") return object;
  const spec = object.spec as { env?: Record<string, string>; node?: string };
  if (!spec.env || Object.keys(spec.env).length === 0) return object;
  if (principal.role === "node" && object.kind === "Machine" && spec.node !== undefined && spec.node === principal.node) return object;
  return { ...object, spec: { ...spec, env: Object.fromEntries(Object.keys(spec.env).map((key) => [key, HIDDEN_VALUE])) } };
}
