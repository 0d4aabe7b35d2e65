import { PLURALS, type Kind, type Resource, type ResourceInput } from "../../model/resource.ts";
import { StoreError, type Store } from "../../store/store.ts";
import { ApiError } from "../api-error.ts";

const ATTEMPTS = 5;

/**
 * Changes part of an object: reads it, builds the full update from it with `change`, and writes it
 * only if the object is still at the revision read. If the client named a revision, that one must
 * be current (409 otherwise); if not, a concurrent write just means reading again and retrying, so
 * nobody's change is lost.
 */
export async function readModifyWrite<R extends Resource>(
  store: Store,
  kind: Kind,
  name: string,
  clientResourceVersion: string | undefined,
  change: (existing: R) => ResourceInput<R["kind"], R["spec"], R["status"]>,
): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    const existing = await store.get<R>(kind, name);
    if (!existing) throw notFound(kind, name);
    const input = change(existing);
    input.metadata.resourceVersion = clientResourceVersion ?? existing.metadata.resourceVersion;
    try {
      return await store.update<R>(input);
    } catch (error) {
      const retry = error instanceof StoreError && error.code === "Conflict" && clientResourceVersion === undefined && attempt < ATTEMPTS;
      if (!retry) throw error;
    }
  }
}

export const notFound = (kind: Kind, name: string): ApiError =>
  new ApiError("NotFound", `${kind} ${name} not found`, `GET /api/v1/${PLURALS[kind]} lists the existing ones`);
