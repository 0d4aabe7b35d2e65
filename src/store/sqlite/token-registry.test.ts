import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { StoreError } from "../store.ts";
import { SqliteStore } from "./sqlite-store.ts";

const digest = (byte: number): Buffer => Buffer.alloc(32, byte);

test("the token registry adds, looks up by id, lists, and revokes by id or name; names are unique", async () => {
  const store = SqliteStore.open(":memory:");
  try {
    const a = await store.tokens.add({ id: "0000000000000001", name: "edge", role: "proxy" }, digest(1));
    await store.tokens.add({ id: "0000000000000002", name: "agent-n1", role: "node", node: "n1" }, digest(2));
    assert.deepEqual(Object.keys(a).sort(), ["createdAt", "id", "name", "role"]);
    const found = await store.tokens.lookup("0000000000000002");
    assert.equal(found?.record.node, "n1");
    assert.deepEqual(found?.digest, digest(2));
    assert.equal(await store.tokens.lookup("0000000000000003"), undefined);
    await assert.rejects(store.tokens.add({ id: "0000000000000003", name: "edge", role: "admin" }, digest(3)), (e: unknown) => e instanceof StoreError && e.code === "AlreadyExists");
    assert.deepEqual((await store.tokens.list()).map((t) => t.name), ["edge", "agent-n1"]);
    assert.equal((await store.tokens.revoke("edge"))?.id, "0000000000000001");
    assert.equal((await store.tokens.revoke("0000000000000002"))?.name, "agent-n1");
    assert.equal(await store.tokens.revoke("edge"), undefined);
    assert.deepEqual(await store.tokens.list(), []);
    // Tokens are no resource: nothing about them shows in the watch history.
    assert.equal(await store.revision(), "0");
  } finally {
    await store.close();
  }
});

test("a version 1 store gains the tokens table and keeps its objects", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pith-store-v1-"));
  const path = join(dir, "state.db");
  try {
    const first = SqliteStore.open(path);
    await first.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "web" }, spec: { image: "x", replicas: 1 } });
    await first.close();
    // Back to what version 1 wrote: no tokens table.
    const db = new Database(path);
    db.exec("DROP TABLE tokens");
    db.pragma("user_version = 1");
    db.close();
    const upgraded = SqliteStore.open(path);
    try {
      assert.equal((await upgraded.get("Service", "web"))?.metadata.name, "web");
      await upgraded.tokens.add({ id: "00000000000000aa", name: "t", role: "read-only" }, digest(9));
      assert.equal((await upgraded.tokens.list()).length, 1);
    } finally {
      await upgraded.close();
    }
    const check = new Database(path, { readonly: true });
    assert.equal(check.pragma("user_version", { simple: true }), 2);
    check.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
