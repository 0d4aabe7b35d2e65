import assert from "node:assert/strict";
import { once } from "node:events";
import { Agent, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { after, before, test } from "node:test";
import { ENV_LIMITS } from "../model/env-rules.ts";
import { MAX_BODY_BYTES, MAX_STREAMS_PER_CLIENT } from "./limits.ts";
import { service, startTestServer, StreamReader, type TestServer } from "./test-support.ts";

type ErrorJson = { error: { code: string; message: string; hint?: string; details?: { path: string; message: string }[] } };

let server: TestServer;
before(async () => {
  server = await startTestServer({ server: { consoleLogPath: async () => "/nonexistent/console.log" } });
});
after(() => server.close());

const errorOf = async (response: Response): Promise<ErrorJson["error"]> => ((await response.json()) as ErrorJson).error;

test("an env value with a line break is refused with 400 and the field's path, for services and machines", async () => {
  const response = await server.call("POST", "/api/v1/services", service("nl", { image: "hello", replicas: 1, env: { A: "x\ny" } }));
  assert.equal(response.status, 400);
  const error = await errorOf(response);
  assert.equal(error.code, "Invalid");
  assert.deepEqual(error.details, [{ path: "/spec/env/A", message: `must be one line (no line break, CR or NUL) of at most ${ENV_LIMITS.valueBytes} bytes` }]);
  for (const value of ["a\rb", "a\u0000b"]) {
    assert.equal((await server.call("POST", "/api/v1/services", service("nl", { image: "hello", replicas: 1, env: { A: value } }))).status, 400);
  }
  const machine = { apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name: "m" }, spec: { image: "sha256:a", memoryMiB: 64, vcpus: 1, desiredState: "running", env: { B: "1\n2" } } };
  const refused = await server.call("POST", "/api/v1/machines", machine);
  assert.equal(refused.status, 400);
  assert.equal((await errorOf(refused)).details?.[0]?.path, "/spec/env/B");
});

test("env sizes: at the bounds accepted, past them 400 with the path", async () => {
  const atBound = { [`N${"x".repeat(ENV_LIMITS.nameLength - 1)}`]: "v".repeat(ENV_LIMITS.valueBytes) };
  assert.equal((await server.call("POST", "/api/v1/services", service("env-ok", { image: "hello", replicas: 1, env: atBound }))).status, 201);
  const cases: [Record<string, string>, string, RegExp][] = [
    [{ A: "é".repeat(ENV_LIMITS.valueBytes / 2 + 1) }, "/spec/env/A", /4098 bytes long \(at most 4096\)/],
    [{ [`N${"x".repeat(ENV_LIMITS.nameLength)}`]: "" }, "/spec/env", /invalid name .*: names must be 1-128/],
    [Object.fromEntries(Array.from({ length: ENV_LIMITS.entries + 1 }, (_, i) => [`V${i}`, ""])), "/spec/env", /must have at most 128 entries/],
    [Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`V${i}`, "v".repeat(ENV_LIMITS.valueBytes)])), "/spec/env", /take 20495 bytes together \(at most 16384\)/],
  ];
  for (const [env, path, message] of cases) {
    const response = await server.call("POST", "/api/v1/services", service("env-bad", { image: "hello", replicas: 1, env }));
    assert.equal(response.status, 400, path);
    const detail = (await errorOf(response)).details?.[0];
    assert.ok(detail?.path.startsWith(path), `${detail?.path} under ${path}`);
    assert.match(detail?.message ?? "", message);
  }
});

test("labels are bounded: 64 entries, keys and values of 253 characters", async () => {
  const ok = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`.padEnd(253, "k"), "v".repeat(253)]));
  assert.equal((await server.call("POST", "/api/v1/services", service("labels-ok", undefined, ok))).status, 201);
  const bad: Record<string, string>[] = [{ ...ok, more: "x" }, { ["k".repeat(254)]: "v" }, { k: "v".repeat(254) }, { "a=b": "v" }, { k: "a\nb" }];
  for (const labels of bad) {
    const response = await server.call("POST", "/api/v1/services", service("labels-bad", undefined, labels));
    assert.equal(response.status, 400);
    assert.match((await errorOf(response)).details?.[0]?.path ?? "", /^\/metadata\/labels/);
  }
});

test("a body over the limit gets 413 with a clear message, and the server carries on", async () => {
  const big = JSON.stringify(service("big", { image: "x".repeat(MAX_BODY_BYTES), replicas: 1 }));
  const response = await fetch(`${server.url}/api/v1/services`, {
    method: "POST",
    headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" },
    body: big,
  });
  assert.equal(response.status, 413);
  const error = await errorOf(response);
  assert.equal(error.code, "TooLarge");
  assert.match(error.message, /larger than the API accepts \(1048576 bytes\)/);
  assert.equal((await server.call("GET", "/healthz")).status, 200);
});

test("a request line over Node's 16 KiB gets 431 in the API's error shape, also on a reused connection and while the client is still sending", async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const put = (name: string, body: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL(server.url);
      const req = httpRequest({ host: url.hostname, port: url.port, agent, method: "PUT", path: `/api/v1/secrets/${name}/status`, headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" } }, (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => (text += c)).on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on("error", reject);
      req.end(body);
    });
  try {
    // The first answer makes the connection one that has written before.
    assert.equal((await put("short", "{}")).status, 400);
    for (const size of [20_000, 300_000]) {
      const answer = await put("a".repeat(size), JSON.stringify({ metadata: { name: "a".repeat(size) } }));
      assert.equal(answer.status, 431, `a ${size}-byte name`);
      const error = (JSON.parse(answer.body) as ErrorJson).error;
      assert.equal(error.code, "TooLarge");
      assert.match(error.message, /request line and headers are larger than the API accepts/);
    }
    assert.equal((await server.call("GET", "/healthz")).status, 200);
  } finally {
    agent.destroy();
  }
});

test("an object over the store's size limit is a 400, not stored", async () => {
  const response = await server.call("POST", "/api/v1/events", {
    apiVersion: "pith.dev/v1",
    kind: "Event",
    metadata: { name: "e1" },
    spec: { involved: { kind: "Machine", name: "m" }, type: "Normal", reason: "R", message: "m".repeat(16 * 1024 + 1), at: "2026-01-01T00:00:00Z" },
  });
  assert.equal(response.status, 400);
  assert.equal((await errorOf(response)).details?.[0]?.path, "/spec/message");
});

test(`a client gets ${MAX_STREAMS_PER_CLIENT} streams; the next is 429 until one closes`, async () => {
  const open: StreamReader[] = [];
  try {
    for (let i = 0; i < MAX_STREAMS_PER_CLIENT - 1; i++) {
      const response = await server.call("GET", i % 2 ? "/api/v1/watch" : "/api/v1/services?watch=true");
      assert.equal(response.status, 200, `watch ${i + 1}`);
      open.push(new StreamReader(response));
    }
    // Console follows count too (of a machine that exists: one that does not ends at once).
    const machine = { apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name: "followed" }, spec: { image: "sha256:a", memoryMiB: 64, vcpus: 1, desiredState: "running" } };
    assert.equal((await server.call("POST", "/api/v1/machines", machine)).status, 201);
    const follow = await server.call("GET", "/api/v1/machines/followed/console?follow=true");
    assert.equal(follow.status, 200);
    open.push(new StreamReader(follow));

    const refused = await server.call("GET", "/api/v1/machines?watch=true");
    assert.equal(refused.status, 429);
    const error = await errorOf(refused);
    assert.equal(error.code, "TooManyRequests");
    assert.match(error.message, /already has 32 watches or console follows open \(at most 32\)/);
    // Plain requests are not streams.
    assert.equal((await server.call("GET", "/api/v1/services")).status, 200);

    await open.pop()!.cancel();
    // The server learns of the close asynchronously: retry until the slot is free (bounded).
    const deadline = Date.now() + 5000;
    for (;;) {
      const again = await server.call("GET", "/api/v1/watch");
      if (again.status === 200) {
        open.push(new StreamReader(again));
        break;
      }
      assert.equal(again.status, 429);
      await again.body?.cancel();
      assert.ok(Date.now() < deadline, "a closed stream's slot was never given back");
    }
  } finally {
    await Promise.all(open.map((r) => r.cancel()));
  }
});

test("a client that stalls while sending a request is answered 408 and cut off; others are served", async (t) => {
  const slow = await startTestServer({ server: { timeouts: { requestMs: 600, headersMs: 300 } } });
  t.after(() => slow.close());
  const { port } = new URL(slow.url);
  const answer = async (partial: string): Promise<string> => {
    const socket = connect(Number(port), "127.0.0.1");
    socket.write(partial);
    let text = "";
    socket.on("data", (d) => (text += d.toString()));
    await once(socket, "close");
    return text;
  };
  const started = Date.now();
  // Headers never finished; then headers done but the body never comes.
  const [headers, body] = await Promise.all([
    answer("GET /api/v1/services HTTP/1.1\r\nHost: x\r\n"),
    answer(`POST /api/v1/services HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${slow.token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`),
  ]);
  assert.match(headers, /^HTTP\/1\.1 408 /);
  assert.match(body, /^HTTP\/1\.1 408 /);
  assert.ok(Date.now() - started < 5000, `cut off after ${Date.now() - started} ms`);
  assert.equal((await slow.call("GET", "/api/v1/services")).status, 200);
});
