import assert from "node:assert/strict";
import { appendFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startTestServer, StreamReader, type TestServer } from "./test-support.ts";

let server: TestServer;
const logs = new Map<string, string>();
before(async () => {
  server = await startTestServer({ server: { consoleLogPath: async (name) => logs.get(name), consolePollMs: 20 } });
});
after(() => server.close());

const machine = (name: string) => ({
  apiVersion: "pith.dev/v1",
  kind: "Machine",
  metadata: { name },
  spec: { image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running" },
});

test("the console log as text; 404 for a machine without one", async () => {
  const path = join(server.dir, "m1.log");
  await writeFile(path, "booting\nready\n");
  logs.set("m1", path);
  const response = await server.call("GET", "/api/v1/machines/m1/console");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
  assert.equal(await response.text(), "booting\nready\n");

  const unknown = await server.call("GET", "/api/v1/machines/nope/console");
  assert.equal(unknown.status, 404);
  assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, "NotFound");

  logs.set("m0", join(server.dir, "not-yet.log"));
  const notStarted = await server.call("GET", "/api/v1/machines/m0/console");
  assert.equal(notStarted.status, 200);
  assert.equal(await notStarted.text(), "");
});

test("?follow=true streams appended bytes until the machine is deleted", async () => {
  const path = join(server.dir, "m2.log");
  await writeFile(path, "line 1\n");
  logs.set("m2", path);
  assert.equal((await server.call("POST", "/api/v1/machines", machine("m2"))).status, 201);

  const response = await server.call("GET", "/api/v1/machines/m2/console?follow=true");
  assert.equal(response.status, 200);
  const reader = new StreamReader(response);
  assert.equal(await reader.until("\n"), "line 1");
  await appendFile(path, "line 2\n");
  assert.equal(await reader.until("\n"), "line 2");
  await appendFile(path, "partial");
  await appendFile(path, " line 3\n");
  assert.equal(await reader.until("\n"), "partial line 3");

  // Deleting the machine ends the stream, after whatever was still written.
  await appendFile(path, "last words\n");
  assert.equal((await server.call("DELETE", "/api/v1/machines/m2")).status, 200);
  assert.equal(await reader.rest(), "last words\n");
});

test("following the log of a machine that no longer exists sends the log and ends", async () => {
  const path = join(server.dir, "m3.log");
  await writeFile(path, "old run\n");
  logs.set("m3", path);
  const response = await server.call("GET", "/api/v1/machines/m3/console?follow=true");
  assert.equal(await response.text(), "old run\n");
});

test("a follower that disconnects is let go (and counted once its stream closed)", async () => {
  const path = join(server.dir, "m4.log");
  await writeFile(path, "x\n");
  logs.set("m4", path);
  await server.call("POST", "/api/v1/machines", machine("m4"));
  const counted = async (): Promise<number> => {
    const metrics = await (await server.call("GET", "/metrics")).text();
    const match = /pith_api_requests_total\{method="GET",route="\/api\/v1\/machines\/:name\/console",status="200"\} (\d+)/.exec(metrics);
    return Number(match?.[1] ?? 0);
  };
  const before = await counted();
  const reader = new StreamReader(await server.call("GET", "/api/v1/machines/m4/console?follow=true"));
  assert.equal(await reader.until("\n"), "x");
  assert.equal(await counted(), before, "an open stream is not counted yet");
  await reader.cancel();
  for (let i = 0; i < 50 && (await counted()) === before; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(await counted(), before + 1);
});
