import type { Kind, Resource, ResourceInput } from "../model/resource.ts";
import { StoreError, type Store } from "./store.ts";

/** One write of a Store.writeMany: what create, update or delete would be given. */
export type StoreWrite =
  | { create: ResourceInput }
  | { update: ResourceInput }
  | { delete: { kind: Kind; name: string; expectedResourceVersion?: string } };

/** A write's outcome in its position: the object create, update or delete would return, or the StoreError it would throw. */
export type StoreWriteResult = { object: Resource } | { error: StoreError };

/**
 * writeMany for a backend that has nothing better: the writes one after another, each its own
 * write, its StoreError its own result. Any other error ends it, as it would end a lone write.
 */
export async function writeEach(store: Pick<Store, "create" | "update" | "delete">, writes: readonly StoreWrite[]): Promise<StoreWriteResult[]> {
  const results: StoreWriteResult[] = [];
  for (const write of writes) {
    try {
      if ("create" in write) results.push({ object: await store.create(write.create) });
      else if ("update" in write) results.push({ object: await store.update(write.update) });
      else {
        const { kind, name, expectedResourceVersion } = write.delete;
        results.push({ object: await store.delete(kind, name, expectedResourceVersion === undefined ? {} : { expectedResourceVersion }) });
      }
    } catch (error) {
      if (!(error instanceof StoreError) || error.code === "Unavailable") throw error;
      results.push({ error });
    }
  }
  return results;
}
