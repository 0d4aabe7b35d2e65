import { randomUUID } from "node:crypto";
import { API_VERSION, type Resource, type ResourceInput } from "../model/resource.ts";
import { sameJson } from "../shared/canonical-json.ts";
import { StoreError } from "./store.ts";

/**
 * What a write does to an object, independent of where it is kept: every Store backend builds the
 * stored object with these, inside its own transaction, given the revision the write will get.
 */

/** The object a create stores: store-assigned metadata, labels and status defaulted. */
export function createdObject(input: ResourceInput, revision: number, now: Date): Resource {
  const at = now.toISOString();
  return {
    apiVersion: API_VERSION,
    kind: input.kind,
    metadata: {
      name: input.metadata.name,
      uid: randomUUID(),
      resourceVersion: String(revision),
      generation: 1,
      labels: { ...(input.metadata.labels ?? {}) },
      createdAt: at,
      updatedAt: at,
    },
    spec: input.spec,
    status: input.status === undefined ? {} : input.status,
  };
}

/**
 * The object an update stores. Spec, labels and status are replaced (labels default to none);
 * an omitted status keeps the existing one, so spec writers do not erase what agents observed.
 */
export function updatedObject(existing: Resource, input: ResourceInput, revision: number, now: Date): Resource {
  checkExpectedVersion(existing, input.metadata.resourceVersion);
  const specChanged = !sameJson(existing.spec, input.spec);
  return {
    apiVersion: API_VERSION,
    kind: existing.kind,
    metadata: {
      ...existing.metadata,
      resourceVersion: String(revision),
      generation: existing.metadata.generation + (specChanged ? 1 : 0),
      labels: { ...(input.metadata.labels ?? {}) },
      updatedAt: now.toISOString(),
    },
    spec: input.spec,
    status: input.status === undefined ? existing.status : input.status,
  };
}

/**
 * The object a delete reports (returned, and in the DELETED watch event): the last stored state
 * with resourceVersion set to the delete's own revision, so a client that tracks "the last
 * resourceVersion I saw" moves past the delete and never sees that revision twice.
 */
export function deletedObject(existing: Resource, expectedResourceVersion: string | undefined, revision: number): Resource {
  checkExpectedVersion(existing, expectedResourceVersion);
  return { ...existing, metadata: { ...existing.metadata, resourceVersion: String(revision) } };
}

/** Optimistic concurrency: a write based on an older read must not silently overwrite. */
function checkExpectedVersion(existing: Resource, expected: string | undefined): void {
  if (expected !== undefined && expected !== existing.metadata.resourceVersion) {
    throw new StoreError(
      "Conflict",
      `${existing.kind} ${existing.metadata.name} is at resourceVersion ${existing.metadata.resourceVersion}, not ${expected}: read it again and retry`,
    );
  }
}

/** True if the object carries every given label with the given value. */
export function matchesLabels(object: Resource, labels: Record<string, string> | undefined): boolean {
  if (labels === undefined) return true;
  return Object.entries(labels).every(([key, value]) => object.metadata.labels[key] === value);
}
