import type { Resource, WatchEventType } from "../model/resource.ts";
import { compareRevisions } from "./watch.ts";

/**
 * Where an informer's objects come from: the store in the control-plane process, or the API over
 * HTTP for agents and proxies (store-source.ts, api-source.ts). One list, then every change after
 * the list's revision, in order; when the history needed to resume is gone, a new list.
 */
export interface InformerSource<R extends Resource> {
  /** What the source is, for error messages (e.g. "Machine from http://127.0.0.1:7070"). */
  readonly description: string;
  /**
   * Calls `sink.replace` with the complete current set and its revision (the first list and
   * every relist), and `sink.apply` with each change after it, until `signal` aborts: then it
   * resolves. Rejects on an error no retry can fix.
   */
  run(sink: InformerSink<R>, signal: AbortSignal): Promise<void>;
}

export interface InformerSink<R extends Resource> {
  replace(items: R[], resourceVersion: string): void;
  apply(type: WatchEventType, object: R): void;
}

/**
 * Told of changes to the cache. `old` is the cached object that was replaced; a deleted object
 * is as its deletion event gave it, or (a relist found it gone) as it was cached.
 */
export interface InformerHandler<R extends Resource> {
  added?(object: R): void;
  updated?(old: R, object: R): void;
  deleted?(object: R): void;
}

/** An index: the values an object is filed under (e.g. its service's name); none to leave it out. */
export type IndexFunction<R extends Resource> = (object: R) => readonly string[];

export interface InformerOptions<R extends Resource> {
  indexes?: Record<string, IndexFunction<R>>;
  /** Told about a handler that threw (default: printed to stderr). */
  onError?: (error: unknown) => void;
}

/**
 * A cache of one kind's objects kept current by a list and a watch (client-go's shared informer,
 * with its indexer), read by every part of a process that needs those objects: controllers, the
 * node agent and the proxy's route table read objects here instead of listing per decision.
 *
 * The cache holds the newest version seen of each object, by resourceVersion: an event, a relist
 * or an `observe` older than what is cached (or older than a deletion seen) changes nothing. So
 * writes a process observes from its own answers are never undone by a late echo or a stale list.
 *
 * Cached objects are shared by every reader: treat them as read-only.
 */
export class Informer<R extends Resource> {
  readonly #source: InformerSource<R>;
  readonly #onError: (error: unknown) => void;
  readonly #objects = new Map<string, R>();
  /** Revisions at which objects were deleted, so an older event or list cannot bring them back. */
  readonly #deletedAt = new Map<string, string>();
  readonly #indexFns: Map<string, IndexFunction<R>>;
  /** index -> value -> names. */
  readonly #indexes = new Map<string, Map<string, Set<string>>>();
  /** The values each object is filed under, per index, to unfile it without recomputing. */
  readonly #filed = new Map<string, Map<string, readonly string[]>>();
  readonly #handlers = new Set<InformerHandler<R>>();
  #resourceVersion = "0";
  #synced = false;
  readonly #syncWaiters: (() => void)[] = [];
  #running: Promise<void> | undefined;

  constructor(source: InformerSource<R>, options: InformerOptions<R> = {}) {
    this.#source = source;
    this.#onError = options.onError ?? ((error) => console.error(`pith: informer (${source.description}): a handler threw:`, error));
    this.#indexFns = new Map(Object.entries(options.indexes ?? {}));
    for (const name of this.#indexFns.keys()) {
      this.#indexes.set(name, new Map());
      this.#filed.set(name, new Map());
    }
  }

  /**
   * Lists and watches until `signal` aborts. The promise settles when the source ends: resolves
   * after the abort, rejects on an error no retry can fix. Call once.
   */
  run(signal: AbortSignal): Promise<void> {
    if (this.#running) throw new Error(`informer (${this.#source.description}) was already started`);
    this.#running = this.#source.run({ replace: (items, rv) => this.#replace(items, rv), apply: (type, object) => this.#apply(type, object) }, signal);
    return this.#running;
  }

  /** Whether the first list has been applied: until then the cache is not the truth. */
  hasSynced(): boolean {
    return this.#synced;
  }

  /** Resolves once the first list has been applied. */
  synced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  /** The revision of the newest event or list applied. */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  get size(): number {
    return this.#objects.size;
  }

  get(name: string): R | undefined {
    return this.#objects.get(name);
  }

  list(): R[] {
    return [...this.#objects.values()];
  }

  /** The objects filed under `value` in `index`. */
  byIndex(index: string, value: string): R[] {
    const names = this.#index(index).get(value);
    if (!names) return [];
    const out: R[] = [];
    for (const name of names) out.push(this.#objects.get(name)!);
    return out;
  }

  /** The values `index` has objects under. */
  indexValues(index: string): string[] {
    return [...this.#index(index).keys()];
  }

  /**
   * Tells `handler` about every later change. With `replay` (the default), first an `added` for
   * each object already cached, as client-go does for late handlers.
   */
  addHandler(handler: InformerHandler<R>, options: { replay?: boolean } = {}): () => void {
    this.#handlers.add(handler);
    if (options.replay ?? true) for (const object of this.#objects.values()) this.#call(() => handler.added?.(object));
    return () => this.#handlers.delete(handler);
  }

  /**
   * Puts an object this process got back from a write into the cache now, rather than when its
   * watch event arrives: the next decision must not act on the state before the write. Guarded
   * like any event; handlers hear of it, and the watch event for it later changes nothing.
   */
  observe(object: R): void {
    this.#apply("MODIFIED", object);
  }

  /**
   * Applies a complete list its owner took itself (a periodic safety net against a watch that
   * missed something), guarded like the source's own lists: nothing newer is undone.
   */
  relist(items: R[], resourceVersion: string): void {
    this.#replace(items, resourceVersion);
  }

  #index(index: string): Map<string, Set<string>> {
    const values = this.#indexes.get(index);
    if (!values) throw new Error(`informer (${this.#source.description}) has no index ${JSON.stringify(index)}`);
    return values;
  }

  #apply(type: WatchEventType, object: R): void {
    const name = object.metadata.name;
    const rv = object.metadata.resourceVersion;
    const cached = this.#objects.get(name);
    const seen = cached?.metadata.resourceVersion ?? this.#deletedAt.get(name);
    if (compareRevisions(rv, this.#resourceVersion) > 0) this.#resourceVersion = rv;
    if (seen !== undefined && compareRevisions(rv, seen) <= 0) return; // older than, or the same as, what is known
    if (type === "DELETED") {
      this.#deletedAt.set(name, rv);
      if (cached) this.#remove(cached, object);
      return;
    }
    this.#deletedAt.delete(name);
    this.#put(cached, object);
  }

  #replace(items: R[], resourceVersion: string): void {
    const listed = new Set<string>();
    for (const item of items) {
      listed.add(item.metadata.name);
      this.#apply("MODIFIED", item);
    }
    // Cached objects absent from the list were deleted, unless they were seen after it was taken.
    for (const [name, object] of this.#objects) {
      if (!listed.has(name) && compareRevisions(object.metadata.resourceVersion, resourceVersion) <= 0) {
        this.#deletedAt.set(name, resourceVersion);
        this.#remove(object, object);
      }
    }
    // A deletion the list already reflects can no longer be undone by anything older.
    for (const [name, rv] of this.#deletedAt) if (compareRevisions(rv, resourceVersion) <= 0) this.#deletedAt.delete(name);
    if (compareRevisions(resourceVersion, this.#resourceVersion) > 0) this.#resourceVersion = resourceVersion;
    if (!this.#synced) {
      this.#synced = true;
      for (const resolve of this.#syncWaiters.splice(0)) resolve();
    }
  }

  #put(old: R | undefined, object: R): void {
    const name = object.metadata.name;
    this.#objects.set(name, object);
    for (const [index, fn] of this.#indexFns) {
      const before = this.#filed.get(index)!.get(name);
      const after = fn(object);
      if (before && before.length === after.length && before.every((v, i) => v === after[i])) continue;
      if (before) this.#unfile(index, name, before);
      this.#file(index, name, after);
    }
    for (const handler of this.#handlers) this.#call(() => (old ? handler.updated?.(old, object) : handler.added?.(object)));
  }

  #remove(cached: R, final: R): void {
    const name = cached.metadata.name;
    this.#objects.delete(name);
    for (const index of this.#indexFns.keys()) {
      const before = this.#filed.get(index)!.get(name);
      if (before) this.#unfile(index, name, before);
    }
    for (const handler of this.#handlers) this.#call(() => handler.deleted?.(final));
  }

  #file(index: string, name: string, values: readonly string[]): void {
    this.#filed.get(index)!.set(name, values);
    const byValue = this.#indexes.get(index)!;
    for (const value of values) {
      let names = byValue.get(value);
      if (!names) byValue.set(value, (names = new Set()));
      names.add(name);
    }
  }

  #unfile(index: string, name: string, values: readonly string[]): void {
    this.#filed.get(index)!.delete(name);
    const byValue = this.#indexes.get(index)!;
    for (const value of values) {
      const names = byValue.get(value);
      names?.delete(name);
      if (names?.size === 0) byValue.delete(value);
    }
  }

  /** A throwing handler must not leave the cache half-updated nor keep the others from hearing. */
  #call(run: () => void): void {
    try {
      run();
    } catch (error) {
      this.#onError(error);
    }
  }
}

/**
 * Resolves once every informer has its first list; rejects if `running` (their runs) settles
 * first: a failed list fails whoever waits, and an abort before the lists says so.
 */
export function untilSynced(informers: readonly { synced(): Promise<void> }[], running: Promise<unknown>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    Promise.all(informers.map((i) => i.synced())).then(() => resolve(), reject);
    running.then(() => reject(new Error("stopped before the first list")), reject);
  });
}
