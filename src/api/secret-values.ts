import type { Machine, Secret, SecretSpec } from "../model/kinds.ts";
import type { Resource, ResourceInput } from "../model/resource.ts";
import { secretPlace, type SecretBox } from "../secrets/secret-box.ts";
import type { Store } from "../store/store.ts";
import { ApiError } from "./api-error.ts";

/**
 * A Secret as a client writes it (`stringData`) turned into what the store keeps: each value
 * sealed, and its keyed hash. A value that did not change keeps its sealed form, so rewriting a
 * Secret with the same values changes nothing (and rolls no service).
 */
export function sealSecretInput(box: SecretBox | undefined, input: ResourceInput, existing: Resource | undefined): ResourceInput {
  if (input.kind !== "Secret") return input;
  if (!box) throw new ApiError("Internal", "this control plane has no secrets key, so it cannot store Secrets", "start it with `pith server` or `pith up`, which create $PITH_HOME/secrets.key");
  const name = input.metadata.name;
  const before = existing?.kind === "Secret" ? (existing as Secret).spec : {};
  // Keys are data ("constructor" is a fine key): read own properties only, build with fromEntries.
  const entries = Object.entries((input.spec as SecretSpec).stringData ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const sealedEntries = entries.map(([key, value]) => {
    const place = secretPlace(name, key);
    const hash = box.hash(place, value);
    const kept = ownValue(before.keys, key)?.hash === hash ? ownValue(before.sealed, key) : undefined;
    return { key, hash, sealed: kept ?? box.seal(place, value) };
  });
  const spec: SecretSpec = {
    keys: Object.fromEntries(sealedEntries.map((e) => [e.key, { hash: e.hash }])),
    sealed: Object.fromEntries(sealedEntries.map((e) => [e.key, e.sealed])),
  };
  return { ...input, spec };
}

/** What every answer shows of a Secret, whoever asks: its keys and their hashes. */
export function secretForClients(secret: Secret): Secret {
  return { ...secret, spec: { keys: secret.spec.keys ?? {} } };
}

/**
 * The env values a machine takes from Secrets, opened for the agent that starts it: the one
 * place a value leaves the store decrypted. Missing Secrets or keys are a 409 naming them.
 */
export async function openMachineSecretEnv(box: SecretBox | undefined, store: Store, machine: Machine): Promise<{ env: Record<string, string>; hashes: Record<string, string> }> {
  const env: Record<string, string> = {};
  const hashes: Record<string, string> = {};
  const refs = Object.entries(machine.spec.secretEnv ?? {});
  if (refs.length === 0) return { env, hashes };
  if (!box) throw new ApiError("Internal", "this control plane has no secrets key, so it cannot open Secrets");
  for (const [variable, ref] of refs) {
    const secret = await store.get<Secret>("Secret", ref.name);
    const sealed = ownValue(secret?.spec.sealed, ref.key);
    if (!secret || sealed === undefined) {
      throw new ApiError("Conflict", `${variable} of machine ${machine.metadata.name} refers to ${secret ? `key ${ref.key} of Secret ${ref.name}, which has no such key` : `Secret ${ref.name}, which does not exist`}`, `create it: pith apply -f a Secret with stringData.${ref.key}`);
    }
    env[variable] = box.open(secretPlace(ref.name, ref.key), sealed);
    hashes[variable] = ownValue(secret.spec.keys, ref.key)?.hash ?? "";
  }
  return { env, hashes };
}

/** A map's own entry: never something inherited from Object.prototype. */
export const ownValue = <T>(map: Record<string, T> | undefined, key: string): T | undefined => (map && Object.hasOwn(map, key) ? map[key] : undefined);
