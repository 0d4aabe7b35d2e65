import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Service } from "../model/kinds.ts";
import { service, startTestServer, type TestServer } from "./test-support.ts";

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server?.close());

const digest = (c: string) => `sha256:${c.repeat(64)}`;

test("rollout restart sets restartedAt and keeps the rest of the spec", async () => {
  assert.equal((await server.call("POST", "/api/v1/services", service("web", { image: "hello", replicas: 2, env: { A: "1" } }))).status, 201);
  const response = await server.call("POST", "/api/v1/services/web/rollout/restart", {});
  const restarted = (await response.json()) as Service;
  assert.equal(response.status, 200);
  assert.ok(restarted.spec.restartedAt && Math.abs(Date.parse(restarted.spec.restartedAt) - Date.now()) < 60_000);
  assert.deepEqual({ ...restarted.spec, restartedAt: undefined }, { image: "hello", replicas: 2, env: { A: "1" }, restartedAt: undefined });
  assert.equal(restarted.metadata.generation, 2);
});

test("rollout undo goes back to the previous revision's template, or a named one; without one, a 409 that says why", async () => {
  assert.equal((await server.call("POST", "/api/v1/services", service("api", { image: "hello", replicas: 1, env: { MODE: "c" } }))).status, 201);
  const none = await server.call("POST", "/api/v1/services/api/rollout/undo", {});
  assert.equal(none.status, 409);
  assert.match(await none.text(), /no revision before the current one.*rollout history api/s);

  const revisions = [
    { revision: 3, templateHash: "c", image: digest("c"), env: { MODE: "c" }, createdAt: "2026-12-06T03:00:00Z" },
    { revision: 2, templateHash: "b", image: digest("b"), env: { MODE: "b" }, startMode: "snapshot", createdAt: "2026-12-06T02:00:00Z" },
    { revision: 1, templateHash: "a", image: digest("a"), createdAt: "2026-12-06T01:00:00Z" },
  ];
  assert.equal((await server.call("PUT", "/api/v1/services/api/status", { status: { revision: 3, revisions } })).status, 200);
  const undone = (await (await server.call("POST", "/api/v1/services/api/rollout/undo", {})).json()) as Service;
  assert.deepEqual(undone.spec, { image: digest("b"), replicas: 1, env: { MODE: "b" }, startMode: "snapshot" });
  const toFirst = (await (await server.call("POST", "/api/v1/services/api/rollout/undo", { toRevision: 1 })).json()) as Service;
  assert.deepEqual(toFirst.spec, { image: digest("a"), replicas: 1 }, "revision 1 had no env and booted");
  const unknown = await server.call("POST", "/api/v1/services/api/rollout/undo", { toRevision: 9 });
  assert.equal(unknown.status, 409);
  assert.match(await unknown.text(), /no revision 9 \(kept: 3, 2, 1\)/);
  assert.equal((await server.call("POST", "/api/v1/services/api/rollout/sideways", {})).status, 400);
  assert.equal((await server.call("POST", "/api/v1/services/nope/rollout/restart", {})).status, 404);
});
