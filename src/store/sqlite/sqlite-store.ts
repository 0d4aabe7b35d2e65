import Database, { type Statement } from "better-sqlite3";
import type { Kind, Resource, ResourceInput, WatchEvent, WatchEventType } from "../../model/resource.ts";
import { createdObject, deletedObject, matchesLabels, updatedObject } from "../object-rules.ts";
import { type Store, StoreError, type StoreWatchEvent, type WatchEnd } from "../store.ts";
import type { StoreWrite, StoreWriteResult } from "../store-writes.ts";
import { checkObjectSize, parseRevision, validateInput, validateInputShape, validateKind, validateName } from "../validate.ts";
import { migrate } from "./schema.ts";
import { SqliteTokenRegistry } from "./token-registry.ts";
import { type CommittedEvent, WatchHub } from "./watch-hub.ts";
import { tightenPrivateFilesSync, touchPrivateFileSync } from "../../shared/private-files.ts";

export interface SqliteStoreOptions {
  /** How many of the newest events the watch history keeps (default 10000). */
  historyLimit?: number;
  /** Told about errors thrown by watch callbacks (default: printed to stderr). */
  onWatcherError?: (error: unknown) => void;
}

const DEFAULT_HISTORY_LIMIT = 10_000;

/** What a write does, given the current object (or undefined) and the revision it will get; may throw a StoreError. */
type Decide = (existing: Resource | undefined, revision: number) => { type: WatchEventType; object: Resource };

/** A write ready for the transaction: its object's key, and what it does. */
interface PlannedWrite {
  kind: Kind;
  name: string;
  decide: Decide;
}

/**
 * The embedded Store: one SQLite file, owned by one process. Watchers are notified in-process,
 * so a second process writing to the same file would not be seen by this one's watchers.
 *
 * Durability: WAL journal with synchronous=NORMAL. A commit appends to the WAL file with write()
 * before it returns, so once a write's promise resolves it survives the process being killed
 * (even with SIGKILL): the data is in the OS page cache and the next open replays the WAL. What
 * NORMAL gives up (versus FULL) is only the fsync per commit, i.e. the last commits may roll back
 * on an OS crash or power loss; the database is never corrupted.
 */
export class SqliteStore implements Store {
  private readonly hub: WatchHub;
  private readonly statements;
  /**
   * The write transaction, made once (better-sqlite3 builds a wrapper per `transaction()` call):
   * one or several writes, each committed or refused on its own, in one commit.
   */
  private readonly writeTransaction: (writes: readonly PlannedWrite[]) => (CommittedEvent | StoreError)[];
  /** API tokens, in the same file (not a resource kind; see token-registry.ts). */
  readonly tokens: SqliteTokenRegistry;

  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    const historyLimit = options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    if (!Number.isSafeInteger(historyLimit) || historyLimit < 1) {
      throw new StoreError("Invalid", `historyLimit must be a positive integer, not ${historyLimit}`);
    }
    const file = path !== ":memory:" && path !== "";
    if (file) touchPrivateFileSync(path);
    const db = new Database(path);
    try {
      db.pragma("journal_mode = WAL"); // ":memory:" stays "memory", which is fine for tests
      db.pragma("synchronous = NORMAL");
      db.pragma("busy_timeout = 5000"); // e.g. a backup or `sqlite3` shell holding the lock briefly
      migrate(db);
      // SQLite gives -wal and -shm the database's mode; these may predate that being 0600.
      if (file) tightenPrivateFilesSync(`${path}-wal`, `${path}-shm`);
    } catch (error) {
      db.close();
      throw error;
    }
    const onWatcherError = options.onWatcherError ?? ((error) => console.error("pith store: a watch callback threw:", error));
    return new SqliteStore(db, historyLimit, onWatcherError);
  }

  private constructor(
    private readonly db: Database.Database,
    private readonly historyLimit: number,
    onWatcherError: (error: unknown) => void,
  ) {
    this.hub = new WatchHub(onWatcherError);
    this.tokens = new SqliteTokenRegistry(db);
    this.statements = {
      revision: db.prepare<[], number>("SELECT value FROM meta WHERE key = 'revision'").pluck(),
      setRevision: db.prepare<[number]>("UPDATE meta SET value = ? WHERE key = 'revision'"),
      get: db.prepare<[Kind, string], string>("SELECT json FROM objects WHERE kind = ? AND name = ?").pluck(),
      list: db.prepare<[Kind], string>("SELECT json FROM objects WHERE kind = ? ORDER BY name").pluck(),
      put: db.prepare<[Kind, string, string, number, string]>(
        "INSERT OR REPLACE INTO objects (kind, name, uid, resource_version, json) VALUES (?, ?, ?, ?, ?)",
      ),
      remove: db.prepare<[Kind, string]>("DELETE FROM objects WHERE kind = ? AND name = ?"),
      append: db.prepare<[number, Kind, string, WatchEventType, string]>(
        "INSERT INTO events (revision, kind, name, type, json) VALUES (?, ?, ?, ?, ?)",
      ),
      compact: db.prepare<[number]>("DELETE FROM events WHERE revision <= ?"),
      oldestEvent: db.prepare<[], number | null>("SELECT MIN(revision) FROM events").pluck(),
      eventsAfter: db.prepare<[number], CommittedEvent>("SELECT revision, kind, type, json FROM events WHERE revision > ? ORDER BY revision"),
      kindEventsAfter: db.prepare<[number, Kind], CommittedEvent>(
        "SELECT revision, kind, type, json FROM events WHERE revision > ? AND kind = ? ORDER BY revision",
      ),
    };
    const s = this.statements;
    this.writeTransaction = db.transaction((writes: readonly PlannedWrite[]): (CommittedEvent | StoreError)[] => {
      let revision = s.revision.get()!;
      const outcomes = writes.map(({ kind, name, decide }): CommittedEvent | StoreError => {
        try {
          const current = s.get.get(kind, name);
          const { type, object } = decide(current === undefined ? undefined : (JSON.parse(current) as Resource), revision + 1);
          const json = JSON.stringify(object);
          // Checked here, on the JSON that is stored, so each write serializes its object once.
          if (type !== "DELETED") checkObjectSize(kind, name, json);
          // Nothing is written before this point, so a write refused above leaves no trace.
          revision++;
          if (type === "DELETED") s.remove.run(kind, name);
          else s.put.run(kind, name, object.metadata.uid, revision, json);
          s.append.run(revision, kind, name, type, json);
          return { revision, kind, type, json };
        } catch (error) {
          // A refusal fails its own write; anything else (SQLite itself) rolls back all of them.
          if (error instanceof StoreError) return error;
          throw error;
        }
      });
      s.setRevision.run(revision);
      s.compact.run(revision - historyLimit);
      return outcomes;
    }).immediate;
  }

  async create<R extends Resource>(input: ResourceInput<R["kind"], R["spec"], R["status"]>): Promise<R> {
    return this.write({ create: input }) as R;
  }

  async get<R extends Resource>(kind: R["kind"], name: string): Promise<R | undefined> {
    validateKind(kind);
    validateName(kind, name);
    const json = this.statements.get.get(kind, name);
    return json === undefined ? undefined : (JSON.parse(json) as R);
  }

  async list<R extends Resource>(kind: R["kind"], options: { labels?: Record<string, string> } = {}): Promise<{ items: R[]; resourceVersion: string }> {
    validateKind(kind);
    // One read transaction: the items and the revision are from the same snapshot.
    return this.db.transaction(() => {
      const items = this.listRows(kind, options.labels).map((json) => JSON.parse(json) as R);
      return {
        items: items.filter((item) => matchesLabels(item, options.labels)),
        resourceVersion: String(this.statements.revision.get()),
      };
    })();
  }

  /**
   * The rows of a kind; with labels, SQLite filters on them first, so a controller listing one
   * service's machines parses those, not every machine (the JS filter after parsing stays the
   * authority on what matches).
   */
  private listRows(kind: Kind, labels: Record<string, string> | undefined): string[] {
    const entries = Object.entries(labels ?? {});
    if (entries.length === 0) return this.statements.list.all(kind);
    let statement = this.labelQueries.get(entries.length);
    if (!statement) {
      const where = entries.map(() => "AND json_extract(json, ?) = ?").join(" ");
      statement = this.db.prepare<unknown[], string>(`SELECT json FROM objects WHERE kind = ? ${where} ORDER BY name`).pluck();
      this.labelQueries.set(entries.length, statement);
    }
    return statement.all(kind, ...entries.flatMap(([key, value]) => [`$.metadata.labels.${JSON.stringify(key)}`, value]));
  }

  private readonly labelQueries = new Map<number, Statement<unknown[], string>>();

  async update<R extends Resource>(input: ResourceInput<R["kind"], R["spec"], R["status"]>): Promise<R> {
    return this.write({ update: input }) as R;
  }

  async delete<R extends Resource>(kind: R["kind"], name: string, options: { expectedResourceVersion?: string } = {}): Promise<R> {
    const expected = options.expectedResourceVersion;
    return this.write({ delete: { kind, name, ...(expected !== undefined ? { expectedResourceVersion: expected } : {}) } }) as R;
  }

  async watch(
    kind: Kind | undefined,
    fromResourceVersion: string | undefined,
    onEvent: (event: WatchEvent & { resourceVersion: string }) => void,
    _onEnd?: WatchEnd, // in-process watches never end by themselves: nothing to say
  ): Promise<() => void> {
    if (kind !== undefined) validateKind(kind);
    const from = fromResourceVersion === undefined ? undefined : parseRevision(fromResourceVersion, "fromResourceVersion");
    // Listen first, then read the history: whatever is committed in between is both buffered and
    // in the history, and the watcher drops the second copy by revision.
    const watcher = this.hub.add(kind, onEvent);
    try {
      const { after, history } = this.readHistory(kind, from);
      watcher.replay(after, history);
    } catch (error) {
      watcher.close();
      throw error;
    }
    return () => watcher.close();
  }

  async revision(): Promise<string> {
    return String(this.statements.revision.get());
  }

  async close(): Promise<void> {
    this.hub.closeAll();
    if (this.db.open) this.db.close();
  }

  async writeMany(writes: readonly StoreWrite[]): Promise<StoreWriteResult[]> {
    // Inputs are checked before the transaction; an invalid one is its own result.
    const planned: (PlannedWrite | StoreError)[] = writes.map((write) => {
      try {
        return this.plan(write);
      } catch (error) {
        if (error instanceof StoreError) return error;
        throw error;
      }
    });
    const outcomes = this.commit(planned.filter((p): p is PlannedWrite => !(p instanceof StoreError)));
    let next = 0;
    return planned.map((p) => {
      const outcome = p instanceof StoreError ? p : outcomes[next++]!;
      if (outcome instanceof StoreError) return { error: outcome };
      // Parsed when read (the caller's own copy): a scale-out's writer rarely reads them all.
      let object: Resource | undefined;
      return { get object() { return (object ??= JSON.parse(outcome.json) as Resource); } };
    });
  }

  /** What a write will do, its input checked: what create, update and delete each hand to write(). */
  private plan(write: StoreWrite): PlannedWrite {
    if ("create" in write) {
      const input = write.create;
      validateInputShape(input);
      return {
        kind: input.kind,
        name: input.metadata.name,
        decide: (existing, revision) => {
          if (existing) throw new StoreError("AlreadyExists", `${input.kind} ${input.metadata.name} already exists`);
          return { type: "ADDED", object: createdObject(input, revision, new Date()) };
        },
      };
    }
    if ("update" in write) {
      const input = write.update;
      validateInputShape(input);
      return {
        kind: input.kind,
        name: input.metadata.name,
        decide: (existing, revision) => {
          if (!existing) throw new StoreError("NotFound", `${input.kind} ${input.metadata.name} not found`);
          return { type: "MODIFIED", object: updatedObject(existing, input, revision, new Date()) };
        },
      };
    }
    const { kind, name, expectedResourceVersion: expected } = write.delete;
    validateKind(kind);
    validateName(kind, name);
    if (expected !== undefined) parseRevision(expected, "expectedResourceVersion");
    return {
      kind,
      name,
      decide: (existing, revision) => {
        if (!existing) throw new StoreError("NotFound", `${kind} ${name} not found`);
        return { type: "DELETED", object: deletedObject(existing, expected, revision) };
      },
    };
  }

  /** One write, alone in its transaction; its refusal is thrown. */
  private write(write: StoreWrite): Resource {
    const [outcome] = this.commit([this.plan(write)]);
    if (outcome instanceof StoreError) throw outcome;
    // The caller's own copy: the watchers share another, which nobody may mutate.
    return JSON.parse(outcome!.json) as Resource;
  }

  /**
   * Writes in one transaction (see writeTransaction), then tells the watchers of each committed
   * one, in order: only after the commit, so nobody hears of a write that was rolled back.
   * IMMEDIATE takes the write lock before reading, so the revision read cannot go stale.
   */
  private commit(writes: readonly PlannedWrite[]): (CommittedEvent | StoreError)[] {
    if (writes.length === 0) return [];
    const outcomes = this.writeTransaction(writes);
    for (const outcome of outcomes) if (!(outcome instanceof StoreError)) this.hub.publish(outcome);
    return outcomes;
  }

  /**
   * The events a watch from `from` must replay, and the revision they follow. `.all()` (not an
   * iterator) because replay callbacks may write, which an open statement iterator forbids.
   */
  private readHistory(kind: Kind | undefined, from: number | undefined): { after: number; history: CommittedEvent[] } {
    const s = this.statements;
    return this.db.transaction(() => {
      const current = s.revision.get()!;
      if (from === undefined) return { after: current, history: [] };
      // The first event this watch needs is from + 1; if that was compacted away, say so rather
      // than silently skip it. (No events at all means everything up to `current` is compacted.)
      const oldest = s.oldestEvent.get() ?? current + 1;
      if (from + 1 < oldest) {
        throw new StoreError("Gone", `revision ${from} is too old: the watch history starts after revision ${oldest - 1}; list again and watch from the list's resourceVersion`);
      }
      const history = kind === undefined ? s.eventsAfter.all(from) : s.kindEventsAfter.all(from, kind);
      return { after: from, history };
    })();
  }
}
