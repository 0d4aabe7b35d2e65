import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { API_VERSION } from "../../model/resource.ts";
import { SqliteStore } from "./sqlite-store.ts";

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

let dir: string;
let umask: number;
before(async () => {
  umask = process.umask(0o022);
  dir = await mkdtemp(join(tmpdir(), "pith-sqlite-modes-"));
});
after(async () => {
  process.umask(umask);
  await rm(dir, { recursive: true, force: true });
});

it("keeps the database and its -wal and -shm readable by their owner only", async () => {
  const path = join(dir, "state.db");
  const store = SqliteStore.open(path);
  try {
    await store.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "s" }, spec: { image: "hello", replicas: 1 } });
    for (const file of [path, `${path}-wal`, `${path}-shm`]) assert.equal(await modeOf(file), 0o600, file);
  } finally {
    await store.close();
  }
});

it("tightens a database an older Pith left 0644", async () => {
  const path = join(dir, "old.db");
  await writeFile(path, "");
  await chmod(path, 0o644);
  const store = SqliteStore.open(path);
  await store.close();
  assert.equal(await modeOf(path), 0o600);
});
