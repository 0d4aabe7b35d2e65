import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startTestServer, type TestServer } from "./test-support.ts";

// `any`: the assertions below walk response JSON.
type Json = Record<string, any>;

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.close());

const json = async (response: Response): Promise<Json> => (await response.json()) as Json;
const volume = (name: string, spec: Record<string, unknown> = { sizeMiB: 1024 }) => ({ apiVersion: "pith.dev/v1", kind: "Volume", metadata: { name }, spec });
const machine = (name: string) => ({ apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name }, spec: { image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running", node: "n1" } });
const attach = (name: string, status: Record<string, unknown>) => server.call("PUT", `/api/v1/volumes/${name}/status`, { status });

test("volumes: create, list with size and holder, delete", async () => {
  const created = await server.call("POST", "/api/v1/volumes", volume("crud-data"));
  assert.equal(created.status, 201);
  assert.equal((await json(created)).spec.sizeMiB, 1024);
  const list = await json(await server.call("GET", "/api/v1/volumes"));
  assert.deepEqual(list.items.map((v: Json) => v.metadata.name), ["crud-data"]);
  assert.equal((await server.call("DELETE", "/api/v1/volumes/crud-data")).status, 200);
  assert.equal((await server.call("GET", "/api/v1/volumes/crud-data")).status, 404);
});

test("volume sizes are bounded, fields are closed, and nothing is created from a bad body", async () => {
  for (const spec of [{ sizeMiB: 1 }, { sizeMiB: 2 * 1024 * 1024 }, { sizeMiB: 1.5 }, {}, { sizeMiB: 64, mount: "/data" }]) {
    const response = await server.call("POST", "/api/v1/volumes", volume("bad", spec));
    assert.equal(response.status, 400, JSON.stringify(spec));
    assert.ok((await json(response)).error.message);
  }
  assert.equal((await server.call("GET", "/api/v1/volumes/bad")).status, 404);
});

test("never two writers: a second machine cannot attach a held volume, and a held volume cannot be deleted", async () => {
  await server.call("POST", "/api/v1/volumes", volume("db-data-0", { sizeMiB: 64 }));
  await server.call("POST", "/api/v1/machines", machine("db-1"));
  await server.call("POST", "/api/v1/machines", machine("db-2"));
  assert.equal((await attach("db-data-0", { attachedTo: "db-1", node: "n1", created: true })).status, 200);

  const second = await attach("db-data-0", { attachedTo: "db-2", node: "n1" });
  assert.equal(second.status, 409);
  assert.match((await json(second)).error.message, /attached to machine db-1; a volume has one writer at a time/);
  const deleted = await server.call("DELETE", "/api/v1/volumes/db-data-0");
  assert.equal(deleted.status, 409);
  assert.match((await json(deleted)).error.message, /attached to machine db-1/);
  // A full replace cannot sneak a holder in either: its status is ignored.
  const current = await json(await server.call("GET", "/api/v1/volumes/db-data-0"));
  const replaced = await server.call("PUT", "/api/v1/volumes/db-data-0", { ...volume("db-data-0", { sizeMiB: 64 }), status: { attachedTo: "db-2" }, metadata: { name: "db-data-0", resourceVersion: current.metadata.resourceVersion } });
  assert.equal(replaced.status, 200);
  assert.equal((await json(replaced)).status.attachedTo, "db-1");

  // Once the holder has stopped, its replacement takes the volume.
  const holder = await json(await server.call("GET", "/api/v1/machines/db-1"));
  await server.call("PUT", "/api/v1/machines/db-1/status", { status: { ...holder.status, phase: "stopped" } });
  assert.equal((await attach("db-data-0", { attachedTo: "db-2", node: "n1", created: true })).status, 200);
  // ...on the node that has its file only.
  await server.call("DELETE", "/api/v1/machines/db-2");
  const elsewhere = await attach("db-data-0", { attachedTo: "db-3", node: "n2" });
  assert.equal(elsewhere.status, 409);
  assert.match((await json(elsewhere)).error.message, /file is on node n1/);
  // Detached, it can go.
  assert.equal((await attach("db-data-0", { node: "n1", created: true })).status, 200);
  assert.equal((await server.call("DELETE", "/api/v1/volumes/db-data-0")).status, 200);
});

test("a volume's size cannot change once made", async () => {
  const created = await json(await server.call("POST", "/api/v1/volumes", volume("fixed", { sizeMiB: 64 })));
  const response = await server.call("PUT", "/api/v1/volumes/fixed", { ...volume("fixed", { sizeMiB: 128 }), metadata: { name: "fixed", resourceVersion: created.metadata.resourceVersion } });
  assert.equal(response.status, 409);
  assert.match((await json(response)).error.message, /size cannot change/);
});

test("a node's agent attaches volumes only on its node, to its own machines, and never takes another node's holder", async () => {
  const mint = async (node: string): Promise<string> => ((await (await server.call("POST", "/api/v1/tokens", { role: "node", node })).json()) as { secret: string }).secret;
  const asNode = (token: string, name: string, status: Record<string, unknown>) =>
    server.call("PUT", `/api/v1/volumes/${name}/status`, { status }, { authorization: `Bearer ${token}` });
  const n1 = await mint("n1");
  const n2 = await mint("n2");
  await server.call("POST", "/api/v1/volumes", volume("shared-0", { sizeMiB: 64 }));
  await server.call("POST", "/api/v1/machines", machine("on-n1")); // placed on n1
  assert.equal((await asNode(n2, "shared-0", { attachedTo: "on-n1", node: "n2" })).status, 403, "not n2's machine");
  assert.equal((await asNode(n2, "shared-0", { attachedTo: "on-n1", node: "n1" })).status, 403, "not n2's node");
  assert.equal((await asNode(n1, "shared-0", { attachedTo: "on-n1", node: "n1" })).status, 200);
  assert.equal((await asNode(n2, "shared-0", { node: "n2" })).status, 403, "n2 cannot detach n1's machine");
  assert.equal((await server.call("GET", "/api/v1/volumes", undefined, { authorization: `Bearer ${n2}` })).status, 200, "every node reads volumes");
  assert.equal((await server.call("DELETE", "/api/v1/volumes/shared-0", undefined, { authorization: `Bearer ${n1}` })).status, 403, "agents never delete volumes");
});
