import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import Database from "better-sqlite3";
import { API_VERSION, type ResourceInput, type WatchEvent } from "../../model/resource.ts";
import type { Store } from "../store.ts";
import { StoreError } from "../store.ts";
import { storeContract } from "../store-contract.ts";
import { SqliteStore, type SqliteStoreOptions } from "./sqlite-store.ts";

const dir = mkdtempSync(join(tmpdir(), "pith-sqlite-store-"));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const paths = new WeakMap<Store, string>();
/** Watch callbacks that throw on purpose would otherwise print to stderr. */
const quiet: SqliteStoreOptions = { onWatcherError: () => {} };

function openFile(options: SqliteStoreOptions = {}): SqliteStore {
  const path = join(dir, `store-${++files}.db`);
  const store = SqliteStore.open(path, { ...quiet, ...options });
  paths.set(store, path);
  return store;
}

function reopen(store: Store): SqliteStore {
  const path = paths.get(store);
  assert.ok(path, "reopen: not a file-backed store from this test");
  const reopened = SqliteStore.open(path, quiet);
  paths.set(reopened, path);
  return reopened;
}

storeContract("sqlite (file)", () => openFile(), { openWithHistoryLimit: (historyLimit) => openFile({ historyLimit }), reopen });
storeContract("sqlite (:memory:)", () => SqliteStore.open(":memory:", quiet), {
  openWithHistoryLimit: (historyLimit) => SqliteStore.open(":memory:", { ...quiet, historyLimit }),
});

const machine = (name: string): ResourceInput<"Machine"> => ({
  apiVersion: API_VERSION,
  kind: "Machine",
  metadata: { name },
  spec: { image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running" },
});

describe("SqliteStore", () => {
  test("the file uses the WAL journal", async () => {
    const store = openFile();
    const path = paths.get(store)!;
    await store.create(machine("m1"));
    await store.close();
    const db = new Database(path, { readonly: true });
    try {
      assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    } finally {
      db.close();
    }
  });

  test("history keeps exactly the last historyLimit events; Gone exactly before them", async () => {
    const store = openFile({ historyLimit: 3 });
    const path = paths.get(store)!;
    try {
      for (let i = 1; i <= 5; i++) await store.create(machine(`m${i}`)); // revisions 1..5
      const db = new Database(path, { readonly: true });
      try {
        assert.deepEqual(db.prepare("SELECT revision FROM events ORDER BY revision").pluck().all(), [3, 4, 5]);
      } finally {
        db.close();
      }
      const seen: string[] = [];
      const stop = await store.watch(undefined, "2", (e) => seen.push(e.resourceVersion));
      stop();
      assert.deepEqual(seen, ["3", "4", "5"]);
      await assert.rejects(store.watch(undefined, "1", () => {}), (e: unknown) => e instanceof StoreError && e.code === "Gone");
    } finally {
      await store.close();
    }
  });

  test("historyLimit must be a positive integer", () => {
    assert.throws(() => SqliteStore.open(":memory:", { historyLimit: 0 }), (e: unknown) => e instanceof StoreError && e.code === "Invalid");
  });

  test("a callback that writes does not reorder events for other watchers", async () => {
    const store = SqliteStore.open(":memory:", quiet);
    try {
      const seen: string[] = [];
      // The first watcher reacts to m1 by creating m1-child (revision 2) while revision 1 is
      // still being delivered; the second watcher must still get 1 before 2.
      await store.watch("Machine", undefined, (e) => {
        if (e.object.metadata.name === "m1") void store.create(machine("m1-child"));
      });
      await store.watch("Machine", undefined, (e) => seen.push(e.resourceVersion));
      await store.create(machine("m1"));
      assert.deepEqual(seen, ["1", "2"]);
    } finally {
      await store.close();
    }
  });

  test("a replay callback that writes sees that write once, after the history", async () => {
    const store = SqliteStore.open(":memory:", quiet);
    try {
      await store.create(machine("a"));
      await store.create(machine("b"));
      const seen: (WatchEvent & { resourceVersion: string })[] = [];
      await store.watch("Machine", "0", (e) => {
        seen.push(e);
        if (e.object.metadata.name === "a") void store.create(machine("c"));
      });
      await store.create(machine("d"));
      assert.deepEqual(seen.map((e) => [e.resourceVersion, e.object.metadata.name]), [["1", "a"], ["2", "b"], ["3", "c"], ["4", "d"]]);
    } finally {
      await store.close();
    }
  });

  test("a watch started inside a callback gets a committed-but-undelivered write once", async () => {
    const store = SqliteStore.open(":memory:", quiet);
    try {
      const seen: string[] = [];
      // On revision 1, the first watcher writes revision 2 (committed, queued behind 1) and then
      // starts a watch from 0: its history already holds 2, and the queue delivers 2 again.
      await store.watch("Machine", undefined, (e) => {
        if (e.object.metadata.name !== "m1") return;
        void store.create(machine("m2"));
        void store.watch("Machine", "0", (inner) => seen.push(inner.resourceVersion));
      });
      await store.create(machine("m1"));
      await store.create(machine("m3"));
      assert.deepEqual(seen, ["1", "2", "3"]);
    } finally {
      await store.close();
    }
  });

  test("an acknowledged write survives SIGKILL of the writing process", async () => {
    const store = openFile();
    const path = paths.get(store)!;
    await store.close();
    const moduleUrl = new URL("./sqlite-store.ts", import.meta.url).href;
    // The child keeps running after its write, so it is the kill that ends it, not a clean exit.
    const code = `
      const { SqliteStore } = await import(${JSON.stringify(moduleUrl)});
      const store = SqliteStore.open(${JSON.stringify(path)});
      const m = await store.create(${JSON.stringify(machine("survivor"))});
      process.stdout.write("written " + m.metadata.resourceVersion + "\\n");
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
    const revision = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const match = /written (\d+)\n/.exec(out);
        if (match) {
          child.kill("SIGKILL"); // at once: no chance to checkpoint or close the database
          resolve(match[1]!);
        }
      });
      child.on("exit", () => reject(new Error(`child exited before writing: ${stderr}`)));
    });
    assert.equal(await exited, "SIGKILL");

    const reopened = reopen(store);
    try {
      const survivor = await reopened.get("Machine", "survivor");
      assert.ok(survivor, "the write acknowledged before SIGKILL is lost");
      assert.equal(survivor.metadata.resourceVersion, revision);
      assert.equal(await reopened.revision(), revision);
    } finally {
      await reopened.close();
    }
  });
});
