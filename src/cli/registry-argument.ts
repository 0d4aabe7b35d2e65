import { userError } from "../shared/errors.ts";
import { parseRegistryReferenceOrUndefined, REGISTRY_REFERENCE_RULE, type RegistryReference } from "../registry/registry-reference.ts";

/** A registry reference given on the command line, or a user error saying the grammar. */
export function registryArgument(text: string): RegistryReference {
  const ref = parseRegistryReferenceOrUndefined(text);
  if (!ref) {
    const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
    throw userError("INVALID_REGISTRY_REFERENCE", `${shown} is not a registry reference`, `give ${REGISTRY_REFERENCE_RULE}, e.g. 127.0.0.1:5000/hello-ts:v1`);
  }
  return ref;
}
