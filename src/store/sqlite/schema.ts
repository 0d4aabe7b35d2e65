import type { Database } from "better-sqlite3";

/** Bumped (with a migration step below) whenever the tables change shape. */
const SCHEMA_VERSION = 2;

/**
 * meta:    the current global revision (one counter for all kinds; a row, not MAX(events), because
 *          events are compacted and the counter must never go back).
 * objects: the current state, one row per object; the JSON is the whole Resource.
 * events:  the watch history, one row per write, keyed by its revision; compacted to the newest
 *          `historyLimit` rows.
 * tokens:  (version 2) API tokens other than the bootstrap admin token: id, unique name, role,
 *          node, the sha256 of the secret, creation time. Not a resource kind: never listed by
 *          the generic routes, never in a watch.
 */
export function migrate(db: Database): void {
  // Read the version inside the (write-locking) transaction: two processes opening a new file at
  // once must not both create the tables.
  db.transaction(() => {
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`the store's schema is version ${version}, newer than this Pith understands (${SCHEMA_VERSION})`);
    }
    if (version === SCHEMA_VERSION) return;
    if (version < 1) createVersion1(db);
    if (version < 2) {
      db.exec(`
        CREATE TABLE tokens (
          id TEXT PRIMARY KEY,
          name TEXT NOT NULL UNIQUE,
          role TEXT NOT NULL,
          node TEXT,
          digest BLOB NOT NULL,
          created_at TEXT NOT NULL
        );
      `);
    }
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

function createVersion1(db: Database): void {
  db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT INTO meta (key, value) VALUES ('revision', 0);
      CREATE TABLE objects (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        uid TEXT NOT NULL,
        resource_version INTEGER NOT NULL,
        json TEXT NOT NULL,
        PRIMARY KEY (kind, name)
      );
      CREATE TABLE events (
        revision INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        json TEXT NOT NULL
      );
    `);
}
