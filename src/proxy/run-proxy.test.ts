import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { startTestServer } from "../api/test-support.ts";
import { PithClient } from "../client/index.ts";
import { PROXY_ENGINES } from "./proxy-engine.ts";
import { startProxy } from "./run-proxy.ts";
import { assertPortFree, send, startBackend, until } from "./test-support.ts";

test("an access log that cannot be written is reported, and the proxy keeps serving", async (t) => {
  const api = await startTestServer();
  t.after(() => api.close());
  const errors: string[] = [];
  // A directory: opening it for appending fails, as a full disk or a removed directory would.
  const proxy = await startProxy({
    client: new PithClient({ server: api.url, token: api.token }),
    host: "127.0.0.1",
    port: 0,
    report: () => {},
    accessLogPath: api.dir,
    onError: (e) => errors.push(String(e)),
  });
  t.after(() => proxy.close());
  await until(() => errors.length > 0, 5000, "the log's error");
  assert.match(errors[0]!, /cannot write the access log .*EISDIR/);
  const response = await fetch(proxy.url, { headers: { host: "nobody.localhost" } });
  assert.equal(response.status, 404);
  await response.text();
});

for (const engine of PROXY_ENGINES) {
  const skip = engine === "haproxy" && !existsSync("/usr/sbin/haproxy") ? "/usr/sbin/haproxy is missing: install it with apt-get install haproxy (scripts/setup.sh does)" : false;
  test(`the ${engine} engine serves a ready machine's service on the proxy's port, answers 404 for other hosts, and frees the port on close`, { skip }, async (t) => {
    const api = await startTestServer();
    t.after(() => api.close());
    const backend = await startBackend("web-1");
    t.after(() => backend.close());
    const client = new PithClient({ server: api.url, token: api.token });
    await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "web" }, spec: { image: "x", replicas: 1 } });
    await client.create({ apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name: "web-1" }, spec: { service: "web", image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running" } });
    await client.updateStatus("Machine", "web-1", { phase: "ready", addresses: [{ guestPort: 8080, hostPort: Number(new URL(backend.url).port), url: backend.url }] });
    const errors: unknown[] = [];
    const proxy = await startProxy({ client, host: "127.0.0.1", port: 0, report: () => {}, onError: (e) => errors.push(e), engine, haproxyThreads: 1 });
    let closed = false;
    t.after(() => (closed ? undefined : proxy.close()));
    const port = Number(new URL(proxy.url).port);
    for (let i = 0; i < 3; i++) assert.equal((await send(port, "web.localhost", `/${i}`)).json().backend, "web-1");
    assert.equal((await send(port, "nobody.localhost", "/")).status, 404);
    await proxy.close();
    closed = true;
    await assertPortFree(port);
    assert.deepEqual(errors, []);
  });
}
