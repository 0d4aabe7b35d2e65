import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startTestServer, type TestServer } from "../../api/test-support.ts";
import { PithClient } from "../../client/pith-client.ts";
import type { ResourceInput } from "../../model/resource.ts";
import { applyObject } from "./apply.ts";

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server?.close());

const secret = (value: string): ResourceInput => ({ apiVersion: "pith.dev/v1", kind: "Secret", metadata: { name: "db" }, spec: { stringData: { password: value } } });

test("pith apply of a Secret says created, then unchanged for the same values, configured for new ones", async () => {
  const client = new PithClient({ server: server.url, token: server.token });
  assert.equal(await applyObject(client, secret("one")), "created");
  assert.equal(await applyObject(client, secret("one")), "unchanged");
  assert.equal(await applyObject(client, secret("two")), "configured");
  assert.equal((await client.get("Secret", "db"))?.metadata.generation, 2);
});

test("pith apply after pith rollout restart keeps the restart: the same file is unchanged and rolls nothing", async () => {
  const client = new PithClient({ server: server.url, token: server.token });
  const web: ResourceInput = { apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "web" }, spec: { image: "hello", replicas: 1 } };
  assert.equal(await applyObject(client, web), "created");
  const restarted = await client.rollout("web", "restart");
  assert.equal(await applyObject(client, web), "unchanged");
  assert.equal((await client.get("Service", "web"))?.spec.restartedAt, restarted.spec.restartedAt);
  assert.equal(await applyObject(client, { ...web, spec: { image: "hello", replicas: 2 } }), "configured");
  assert.equal((await client.get("Service", "web"))?.spec.restartedAt, restarted.spec.restartedAt, "a real change keeps it too");
});
