import type { ICompare, IEvent, IKeyValue, IRequestOp, ITxnResponse } from "etcd3";
import { API_VERSION, type Kind, type Resource, type ResourceInput, type WatchEvent } from "../../model/resource.ts";
import { createdObject, deletedObject, matchesLabels, updatedObject } from "../object-rules.ts";
import { type Store, StoreError, type WatchEnd } from "../store.ts";
import { type StoreWrite, type StoreWriteResult, writeEach } from "../store-writes.ts";
import { parseRevision, validateInput, validateKind, validateName } from "../validate.ts";
import { EtcdConnection, type EtcdConnectionOptions, prefixRange, revisionOf } from "./etcd-connection.ts";
import { EtcdKeys } from "./etcd-keys.ts";
import { EtcdTokenRegistry } from "./etcd-token-registry.ts";
import { EtcdWatch, gone } from "./etcd-watch.ts";

export interface EtcdStoreOptions extends EtcdConnectionOptions {
  /** Key prefix of this installation (default /pith/). */
  prefix?: string;
  /** Told about errors thrown by watch callbacks (default: printed to stderr). */
  onWatcherError?: (error: unknown) => void;
}

/**
 * A write that must only happen while a condition on another key holds: the controllers' writes
 * carry their leader key's create revision, so a deposed leader's late write fails instead of
 * landing after its successor's (see etcd-leadership.ts).
 */
export interface Fence {
  key: string;
  createRevision: string;
}

/** A list reads this many objects per request, all at one revision. */
const PAGE = 500;
/** An update retried this often against concurrent writers (without a resourceVersion of its own) gives up. */
const MAX_WRITE_ATTEMPTS = 50;

type StoreEvent = WatchEvent & { resourceVersion: string };

/** What every view of one store shares: the connection and the watches writers wait for. */
interface Shared {
  connection: EtcdConnection;
  keys: EtcdKeys;
  watches: Map<EtcdWatch, Kind | undefined>;
  /**
   * The last version of each key this process read or wrote (stored form and mod revision): a
   * write computed from it skips the read, since its transaction compares the mod revision anyway
   * and reads again if the key moved on. Bounded: cleared when it grows past RECENT_LIMIT.
   */
  recent: Map<string, { value: Buffer; modRevision: string }>;
  onWatcherError: (error: unknown) => void;
}

const RECENT_LIMIT = 50_000;

/**
 * The Store on an etcd cluster, shared by every control plane that opens it.
 *
 * - One object is one key; its resourceVersion is the key's mod revision, so revisions are
 *   etcd's (shared with anything else written to the cluster: they increase, not contiguously).
 * - Every write is one transaction comparing the key's create or mod revision with what the
 *   write was computed from (and, for controllers, their leader's fence): it applies whole or
 *   not at all, and a concurrent writer makes it read again, never overwrite.
 * - A watch is an etcd watch from the revision after the given one; etcd's compaction is what
 *   bounds the history, and a compacted revision is StoreError "Gone", at the start or later.
 * - As with SQLite, a write resolves only once this process's own watches of that kind have
 *   delivered it (bounded by the request timeout), so controllers read their own writes from
 *   their caches.
 */
export class EtcdStore implements Store {
  readonly tokens: EtcdTokenRegistry;

  /** Connects and checks that the cluster answers (StoreError "Unavailable" otherwise). */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const keys = new EtcdKeys(options.prefix);
    const connection = new EtcdConnection(options);
    const store = new EtcdStore({
      connection,
      keys,
      watches: new Map(),
      recent: new Map(),
      onWatcherError: options.onWatcherError ?? ((error) => console.error("pith store: a watch callback threw:", error)),
    });
    try {
      await store.revision();
    } catch (error) {
      connection.close();
      throw error;
    }
    return store;
  }

  private constructor(
    private readonly shared: Shared,
    private readonly fence?: Fence,
  ) {
    this.tokens = new EtcdTokenRegistry(shared.connection, shared.keys);
  }

  get keys(): EtcdKeys {
    return this.shared.keys;
  }

  get connection(): EtcdConnection {
    return this.shared.connection;
  }

  /** A view of this store whose writes also require `fence` to hold; closing it closes nothing. */
  fenced(fence: Fence): Store {
    return new EtcdStore(this.shared, fence);
  }

  async create<R extends Resource>(input: ResourceInput<R["kind"], R["spec"], R["status"]>): Promise<R> {
    validateInput(input);
    const key = Buffer.from(this.keys.object(input.kind, input.metadata.name));
    const object = createdObject(input, 0, new Date());
    const response = await this.txn([{ key, target: "Create", result: "Equal", create_revision: 0 }], [{ request_put: { key, value: encode(object) } }]);
    if (!response.succeeded) throw new StoreError("AlreadyExists", `${input.kind} ${input.metadata.name} already exists`);
    return (await this.written(object, response)) as R;
  }

  /**
   * One after another, each its own transaction. Not one transaction for all: etcd gives every
   * write of a transaction the same revision, and a resourceVersion is that revision alone, so a
   * client whose watch broke after the first of them would resume past its siblings and never
   * see them.
   */
  writeMany(writes: readonly StoreWrite[]): Promise<StoreWriteResult[]> {
    return writeEach(this, writes);
  }

  async get<R extends Resource>(kind: R["kind"], name: string): Promise<R | undefined> {
    validateKind(kind);
    validateName(kind, name);
    const kv = await this.read(kind, name);
    return kv && (decode(kv) as R);
  }

  async list<R extends Resource>(kind: R["kind"], options: { labels?: Record<string, string> } = {}): Promise<{ items: R[]; resourceVersion: string }> {
    validateKind(kind);
    const { key, range_end } = prefixRange(this.keys.ofKind(kind));
    const items: R[] = [];
    let from = key;
    let revision: string | undefined;
    // Pages at one revision: the items and the revision are one snapshot however many there are.
    for (;;) {
      const page = await this.shared.connection.range({ key: from, range_end, limit: PAGE, ...(revision && { revision }) });
      revision ??= page.header.revision;
      for (const kv of page.kvs) {
        let object: R;
        try {
          object = decode(kv) as R;
        } catch (error) {
          // Not written by Pith (someone else wrote under its prefix): leave it out, say so.
          this.shared.onWatcherError(error);
          continue;
        }
        if (matchesLabels(object, options.labels)) items.push(object);
      }
      if (!page.more || page.kvs.length === 0) break;
      from = Buffer.concat([page.kvs[page.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    return { items, resourceVersion: revision };
  }

  async update<R extends Resource>(input: ResourceInput<R["kind"], R["spec"], R["status"]>): Promise<R> {
    validateInput(input);
    const key = Buffer.from(this.keys.object(input.kind, input.metadata.name));
    return (await this.rewrite(input.kind, input.metadata.name, (current) => {
      // Throws Conflict if input.metadata.resourceVersion is not the current one.
      const object = updatedObject(current, input, 0, new Date());
      return { object, op: { request_put: { key, value: encode(object) } } };
    })) as R;
  }

  async delete<R extends Resource>(kind: R["kind"], name: string, options: { expectedResourceVersion?: string } = {}): Promise<R> {
    validateKind(kind);
    validateName(kind, name);
    const expected = options.expectedResourceVersion;
    if (expected !== undefined) parseRevision(expected, "expectedResourceVersion");
    const key = Buffer.from(this.keys.object(kind, name));
    return (await this.rewrite(kind, name, (current) => ({ object: deletedObject(current, expected, 0), op: { request_delete_range: { key } } }))) as R;
  }

  /**
   * A write computed from the current object: from the last version this process knows if it has
   * one (no read), else read. The transaction applies it only if the key is still at that version;
   * if not, it reads again and recomputes (a stale given resourceVersion then fails as Conflict).
   */
  private async rewrite(kind: Kind, name: string, change: (current: Resource) => { object: Resource; op: IRequestOp }): Promise<Resource> {
    const key = this.keys.object(kind, name);
    let known = this.shared.recent.get(key);
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
      const fromMemory = known !== undefined;
      if (!known) {
        const kv = await this.read(kind, name);
        if (!kv) throw new StoreError("NotFound", `${kind} ${name} not found`);
        known = { value: kv.value, modRevision: kv.mod_revision };
      }
      let planned: { object: Resource; op: IRequestOp };
      try {
        planned = change(decode({ value: known.value, mod_revision: known.modRevision }));
      } catch (error) {
        // What this process remembered may be older than what the caller read: read, then decide.
        if (fromMemory && error instanceof StoreError && error.code === "Conflict") {
          known = undefined;
          continue;
        }
        throw error;
      }
      const response = await this.txn([{ key: Buffer.from(key), target: "Mod", result: "Equal", mod_revision: known.modRevision }], [planned.op]);
      if (response.succeeded) return this.written(planned.object, response, planned.op.request_delete_range !== undefined);
      known = undefined; // written by someone else since: read again
    }
    throw contended(kind, name);
  }

  async watch(kind: Kind | undefined, fromResourceVersion: string | undefined, onEvent: (event: StoreEvent) => void, onEnd?: WatchEnd): Promise<() => void> {
    if (kind !== undefined) validateKind(kind);
    const now = BigInt(await this.revision());
    const from = fromResourceVersion === undefined ? now : BigInt(parseRevision(fromResourceVersion, "fromResourceVersion"));
    if (fromResourceVersion !== undefined) await this.checkRetained(from);
    const watch: EtcdWatch = new EtcdWatch(
      this.shared.connection,
      prefixRange(kind === undefined ? this.keys.objects : this.keys.ofKind(kind)),
      from + 1n,
      (events) => this.deliver(events, onEvent),
      (error) => {
        this.shared.watches.delete(watch);
        onEnd?.(error);
      },
      now,
    );
    this.shared.watches.set(watch, kind);
    try {
      await watch.start();
    } catch (error) {
      this.shared.watches.delete(watch);
      watch.close();
      throw error;
    }
    return () => {
      this.shared.watches.delete(watch);
      watch.close();
    };
  }

  async revision(): Promise<string> {
    const response = await this.shared.connection.range({ key: Buffer.from(this.keys.leader), keys_only: true, limit: 1 });
    return response.header.revision;
  }

  /** Discards the history before `revision` (etcd's compaction): watches from before it get Gone. */
  async compact(revision: string): Promise<void> {
    await this.shared.connection.bounded("compact", (deadline) => this.shared.connection.client.kv.compact({ revision, physical: true }, { deadline }));
  }

  async close(): Promise<void> {
    if (this.fence) return; // a view: the store it came from owns the connection
    for (const watch of this.shared.watches.keys()) watch.close();
    this.shared.watches.clear();
    this.shared.connection.close();
  }

  private remember(key: string, value: Buffer, modRevision: string): void {
    if (this.shared.recent.size >= RECENT_LIMIT) this.shared.recent.clear();
    this.shared.recent.set(key, { value, modRevision });
  }

  private async read(kind: Kind, name: string): Promise<IKeyValue | undefined> {
    const key = this.keys.object(kind, name);
    const response = await this.shared.connection.range({ key: Buffer.from(key) });
    const kv = response.kvs[0];
    if (kv) this.remember(key, kv.value, kv.mod_revision);
    else this.shared.recent.delete(key);
    return kv;
  }

  /** A transaction with this view's fence added to its conditions; a broken fence is an error, not a mere failed compare. */
  private async txn(compare: ICompare[], success: IRequestOp[]): Promise<ITxnResponse> {
    if (!this.fence) return this.shared.connection.txn({ compare, success, failure: [] });
    const fenceKey = Buffer.from(this.fence.key);
    const response = await this.shared.connection.txn({
      compare: [...compare, { key: fenceKey, target: "Create", result: "Equal", create_revision: this.fence.createRevision }],
      success,
      failure: [{ request_range: { key: fenceKey } }],
    });
    if (!response.succeeded) {
      const holder = response.responses[0]?.response_range?.kvs[0];
      if (holder?.create_revision !== this.fence.createRevision) {
        throw new StoreError("Conflict", "this control plane is no longer the controllers' leader: its write was refused (another control plane leads now)");
      }
    }
    return response;
  }

  /** The written object at its revision, once this process's own watches that cover it have delivered it. */
  private async written(object: Resource, response: ITxnResponse, deleted = false): Promise<Resource> {
    const revision = response.header.revision;
    const result = { ...object, metadata: { ...object.metadata, resourceVersion: revision } };
    const key = this.keys.object(object.kind, object.metadata.name);
    if (deleted) this.shared.recent.delete(key);
    else this.remember(key, encode(object), revision);
    const waits: Promise<void>[] = [];
    // Watches of one kind are the controllers' caches: they must have the write even if they are
    // still catching up after a relist. Watches of every kind are the API's, for clients over HTTP:
    // one resuming from long ago holds up no writer while it replays.
    for (const [watch, kind] of this.shared.watches) {
      if (kind === undefined || kind === object.kind) waits.push(watch.delivered(BigInt(revision), this.shared.connection.timeoutMs, kind !== undefined));
    }
    await Promise.all(waits);
    return result;
  }

  /** Fails with Gone if etcd no longer has the history after `from` (a range at a compacted revision fails). */
  private async checkRetained(from: bigint): Promise<void> {
    try {
      await this.shared.connection.range({ key: Buffer.from(this.keys.leader), keys_only: true, limit: 1, revision: (from > 0n ? from : 1n).toString() });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (message.includes("compacted")) throw gone(from + 1n, "a later revision");
      if (message.includes("future revision")) return;
      throw error;
    }
  }

  private deliver(events: IEvent[], onEvent: (event: StoreEvent) => void): void {
    for (const event of events) {
      let converted: StoreEvent;
      try {
        converted = this.toWatchEvent(event);
      } catch (error) {
        this.shared.onWatcherError(error);
        continue;
      }
      try {
        onEvent(converted);
      } catch (error) {
        // One broken watcher must not stop the others, nor this one's later events.
        this.shared.onWatcherError(error);
      }
    }
  }

  private toWatchEvent(event: IEvent): StoreEvent {
    const resourceVersion = revisionOf(event.kv);
    if (event.type === "Delete") {
      // The deleted object as it was, at the delete's revision (prev_kv; absent only if compacted).
      const object = event.prev_kv ? decode(event.prev_kv) : this.tombstone(event.kv.key.toString());
      return { type: "DELETED", object: { ...object, metadata: { ...object.metadata, resourceVersion } }, resourceVersion };
    }
    return { type: event.kv.version === "1" ? "ADDED" : "MODIFIED", object: decode(event.kv), resourceVersion };
  }

  private tombstone(key: string): Resource {
    const { kind, name } = this.keys.parseObject(key);
    return { apiVersion: API_VERSION, kind, metadata: { name, uid: "", resourceVersion: "0", generation: 0, labels: {}, createdAt: "", updatedAt: "" }, spec: {}, status: {} } as Resource;
  }
}

/** The stored form: the object without its resourceVersion, which is the key's mod revision. */
function encode(object: Resource): Buffer {
  const { resourceVersion: _, ...metadata } = object.metadata;
  return Buffer.from(JSON.stringify({ ...object, metadata }));
}

function decode(kv: Pick<IKeyValue, "value" | "mod_revision"> & { key?: Buffer }): Resource {
  let object: Resource;
  try {
    object = JSON.parse(kv.value.toString()) as Resource;
    if (typeof object?.metadata?.name !== "string" || typeof object.kind !== "string") throw new Error("not a Pith object");
  } catch (error) {
    throw new StoreError("Invalid", `the value of etcd key ${kv.key?.toString() ?? "(unknown)"} is not an object Pith wrote (${(error as Error).message}); remove it or keep other writers out of Pith's prefix`);
  }
  object.metadata.resourceVersion = revisionOf(kv);
  return object;
}

function contended(kind: Kind, name: string): StoreError {
  return new StoreError("Conflict", `${kind} ${name} changed ${MAX_WRITE_ATTEMPTS} times while this write was being made: retry`);
}
