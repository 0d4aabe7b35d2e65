import type { Kind, Resource, ResourceInput, WatchEvent } from "../model/resource.ts";
import type { StoreWrite, StoreWriteResult } from "./store-writes.ts";

/**
 * Where the control plane keeps every object. Implementations: sqlite/ (embedded, the default)
 * and etcd/ (shared by several control planes). Every implementation passes store-contract.ts.
 *
 * Revisions: one counter across all kinds, incremented by every write; an object's
 * metadata.resourceVersion is the revision of its last write. Watches resume from a revision
 * and see every later event exactly once, in order.
 */
export interface Store {
  /** Creates an object; fails with StoreError "AlreadyExists" if the name is taken. */
  create<R extends Resource>(input: ResourceInput<R["kind"], R["spec"], R["status"]>): Promise<R>;
  get<R extends Resource>(kind: R["kind"], name: string): Promise<R | undefined>;
  /** All objects of a kind (optionally matching every given label) and the revision they are at. */
  list<R extends Resource>(kind: R["kind"], options?: { labels?: Record<string, string> }): Promise<{ items: R[]; resourceVersion: string }>;
  /**
   * Replaces spec, labels and status of an existing object. If input.metadata.resourceVersion is
   * set and is not the current one: StoreError "Conflict". Missing object: "NotFound".
   * generation is incremented only when spec changed.
   */
  update<R extends Resource>(input: ResourceInput<R["kind"], R["spec"], R["status"]>): Promise<R>;
  /** Deletes; with expectedResourceVersion, only if it matches ("Conflict" otherwise). Missing: "NotFound". */
  delete<R extends Resource>(kind: R["kind"], name: string, options?: { expectedResourceVersion?: string }): Promise<R>;
  /**
   * Several writes, each as create, update or delete would do it and answered in its position:
   * one write's StoreError (AlreadyExists, NotFound, Conflict, Invalid) fails only that write.
   * Their revisions increase in the order given. A backend may commit them together (SQLite: one
   * transaction, so a thousand writes cost one commit); any other error rejects the whole call,
   * and then nothing of it was written (SQLite) or what was is unknown (Unavailable, etcd).
   */
  writeMany(writes: readonly StoreWrite[]): Promise<StoreWriteResult[]>;
  /**
   * Calls onEvent for every change to objects of `kind` (all kinds if undefined) after revision
   * `fromResourceVersion` (from now if undefined): first the recorded history, in order, then live
   * events. If the history before that revision was compacted: StoreError "Gone".
   *
   * A watch lasts until its unsubscribe function is called, unless the store cannot keep it: then
   * `onEnd` is called once with why, and no event follows. "Gone" means the history it must
   * resume from was compacted meanwhile (etcd, after a lost connection): list again and watch from
   * the list's revision, as after a Gone at the start. An in-process store never ends a watch.
   * Watchers of one write may share its object: they must not mutate it.
   */
  watch(kind: Kind | undefined, fromResourceVersion: string | undefined, onEvent: (event: StoreWatchEvent) => void, onEnd?: WatchEnd): Promise<() => void>;
  /** The current revision. */
  revision(): Promise<string>;
  close(): Promise<void>;
}

/** A watch event from a store: its revision, and the object serialized, where the store has that at hand. */
export type StoreWatchEvent = WatchEvent & {
  resourceVersion: string;
  /**
   * JSON.stringify(object), as the store wrote it: a watcher that forwards the object unchanged
   * (the API's watch route) sends this instead of serializing every event again per watcher.
   */
  json?: string;
};

/** Unavailable: the backend could not be reached or has no quorum (etcd); nothing was changed, or (a write that timed out) it is unknown whether it was. */
/** Told why a watch ended by itself (see Store.watch). */
export type WatchEnd = (error: StoreError) => void;

export type StoreErrorCode = "AlreadyExists" | "NotFound" | "Conflict" | "Gone" | "Invalid" | "Unavailable";

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "StoreError";
  }
}
