import type { Resource, ResourceInput } from "../model/resource.ts";
import type { Store } from "../store/store.ts";

/**
 * A changed copy of an object as an update, guarded by the resourceVersion it was read at: if
 * someone wrote in between, the store says Conflict and the reconcile is simply retried.
 */
export function changedCopy<R extends Resource>(object: R, change: { spec?: R["spec"]; status?: R["status"] }): ResourceInput<R["kind"], R["spec"], R["status"]> {
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    metadata: { name: object.metadata.name, labels: object.metadata.labels, resourceVersion: object.metadata.resourceVersion },
    spec: change.spec ?? object.spec,
    status: change.status ?? object.status,
  };
}

/** Writes a changed copy of an object back (see changedCopy). */
export function writeBack<R extends Resource>(store: Store, object: R, change: { spec?: R["spec"]; status?: R["status"] }): Promise<R> {
  return store.update<R>(changedCopy(object, change));
}
