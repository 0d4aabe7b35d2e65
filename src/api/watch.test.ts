import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Store } from "../store/store.ts";
import { createApiServer } from "./api-server.ts";
import { service, startTestServer, StreamReader, type TestServer } from "./test-support.ts";

type Line = { type: string; object: { metadata: { name: string; resourceVersion: string } } };

let server: TestServer;
before(async () => {
  server = await startTestServer({ server: { heartbeatMs: 200 } });
});
after(() => server.close());

const create = async (name: string): Promise<string> => {
  const response = await server.call("POST", "/api/v1/services", service(name));
  assert.equal(response.status, 201);
  return ((await response.json()) as Line["object"]).metadata.resourceVersion;
};

/** Opens a watch; the caller cancels it. */
async function watch(path: string, headers: Record<string, string> = {}): Promise<StreamReader> {
  const response = await server.call("GET", path, undefined, headers);
  if (response.status !== 200) assert.fail(`watch ${path}: ${response.status} ${await response.text()}`);
  return new StreamReader(response);
}

/** The next event that is not a BOOKMARK. */
async function nextEvent(reader: StreamReader): Promise<Line> {
  for (;;) {
    const line = await reader.json<Line>();
    if (line.type !== "BOOKMARK") return line;
  }
}

describe("NDJSON watch", () => {
  test("from a revision: exactly the later events, in order", async () => {
    const from = await create("w1");
    await create("w2");
    await server.call("PUT", "/api/v1/services/w1", service("w1", { image: "v2" }));
    await server.call("DELETE", "/api/v1/services/w2");
    await server.call("POST", "/api/v1/nodes", { apiVersion: "pith.dev/v1", kind: "Node", metadata: { name: "n1" }, spec: { capacity: { memoryMiB: 1024, vcpus: 2 }, accelerator: "tcg" } });
    const response = await server.call("GET", `/api/v1/services?watch=true&resourceVersion=${from}`);
    assert.match(response.headers.get("content-type") ?? "", /^application\/x-ndjson/);
    const reader = new StreamReader(response);
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { type, object } = await nextEvent(reader);
      seen.push(`${type} ${object.metadata.name} ${object.metadata.resourceVersion}`);
    }
    const rv = Number(from);
    assert.deepEqual(seen, [`ADDED w2 ${rv + 1}`, `MODIFIED w1 ${rv + 2}`, `DELETED w2 ${rv + 3}`]);
    // Live events follow the history; nodes never appear in a services watch.
    const live = await create("w3");
    const next = await nextEvent(reader);
    assert.deepEqual([next.type, next.object.metadata.name, next.object.metadata.resourceVersion], ["ADDED", "w3", live]);
    await reader.cancel();
  });

  test("a client that disconnects and resumes from the last resourceVersion misses and repeats nothing", async () => {
    const from = await server.store.revision();
    let writing = true;
    const written: string[] = [];
    const writer = (async () => {
      for (let i = 0; writing || i < 10; i++) {
        written.push(await create(`r${i}`));
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    const received: string[] = [];
    let last = from;
    for (let session = 0; session < 4; session++) {
      const reader = await watch(`/api/v1/services?watch=true&resourceVersion=${last}`);
      for (let i = 0; i < 5; i++) {
        const line = await reader.json<Line>();
        if (line.type !== "BOOKMARK") received.push(line.object.metadata.resourceVersion);
        last = line.object.metadata.resourceVersion;
      }
      await reader.cancel(); // writes go on while nobody watches
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
    writing = false;
    await writer;
    const reader = await watch(`/api/v1/services?watch=true&resourceVersion=${last}`);
    while (received.length < written.length) received.push((await nextEvent(reader)).object.metadata.resourceVersion);
    await reader.cancel();
    assert.deepEqual(received, written);
  });

  test("an idle watch gets BOOKMARKs at the current revision, also for writes to other kinds", async () => {
    const reader = await watch("/api/v1/images?watch=true");
    await create("bm");
    const current = await server.store.revision();
    for (;;) {
      const line = await reader.json<Line>(2000);
      assert.equal(line.type, "BOOKMARK", "no image changed");
      assert.deepEqual(Object.keys(line.object), ["metadata"]);
      if (line.object.metadata.resourceVersion === current) break;
      assert.ok(Number(line.object.metadata.resourceVersion) < Number(current));
    }
    await reader.cancel();
  });

  test("/api/v1/watch streams every kind", async () => {
    const from = await server.store.revision();
    await create("all1");
    await server.call("POST", "/api/v1/nodes", { apiVersion: "pith.dev/v1", kind: "Node", metadata: { name: "all2" }, spec: { capacity: { memoryMiB: 1024, vcpus: 2 }, accelerator: "kvm" } });
    const reader = await watch(`/api/v1/watch?resourceVersion=${from}`);
    const kinds = [(await nextEvent(reader)) as Line & { object: { kind?: string } }, (await nextEvent(reader)) as Line & { object: { kind?: string } }];
    assert.deepEqual(kinds.map((l) => `${l.object.kind} ${l.object.metadata.name}`), ["Service all1", "Node all2"]);
    await reader.cancel();
  });

  test("a compacted revision is 410 Gone, as a JSON error", async () => {
    const small = await startTestServer({ store: { historyLimit: 2 } });
    try {
      for (const name of ["a", "b", "c", "d"]) await small.call("POST", "/api/v1/services", service(name));
      const response = await small.call("GET", "/api/v1/services?watch=true&resourceVersion=1");
      assert.equal(response.status, 410);
      const { error } = (await response.json()) as { error: { code: string; hint: string } };
      assert.equal(error.code, "Gone");
      assert.match(error.hint, /list/);
      const ok = await small.call("GET", "/api/v1/services?watch=true&resourceVersion=2");
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
    } finally {
      await small.close();
    }
  });

  test("a bad resourceVersion is 400", async () => {
    const response = await server.call("GET", "/api/v1/services?watch=true&resourceVersion=abc");
    assert.equal(response.status, 400);
  });
});

describe("Server-Sent Events watch", () => {
  const sse = { accept: "text/event-stream" };

  test("id/event/data frames, pings, and resuming from Last-Event-ID", async () => {
    const from = await create("s1");
    await create("s2");
    await server.call("DELETE", "/api/v1/services/s1");
    const response = await server.call("GET", `/api/v1/services?watch=true&resourceVersion=${from}`, undefined, sse);
    assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
    const reader = new StreamReader(response);
    const frame = async (): Promise<string> => {
      for (;;) {
        const text = await reader.until("\n\n");
        if (!text.startsWith(": ping")) return text;
      }
    };
    const first = (await frame()).split("\n");
    assert.equal(first[0], `id: ${Number(from) + 1}`);
    assert.equal(first[1], "event: ADDED");
    assert.ok(first[2]?.startsWith("data: "));
    assert.equal(JSON.parse(first[2]!.slice("data: ".length)).metadata.name, "s2");
    const second = (await frame()).split("\n");
    assert.deepEqual(second.slice(0, 2), [`id: ${Number(from) + 2}`, "event: DELETED"]);
    // Idle: a ping comment that also carries the current revision as the id.
    const ping = await reader.until("\n\n", 2000);
    assert.equal(ping, `: ping\nid: ${await server.store.revision()}`);
    await reader.cancel();

    // Reconnect as EventSource does: Last-Event-ID wins over the URL's resourceVersion.
    const latest = await create("s3");
    const resumed = await server.call("GET", `/api/v1/services?watch=true&resourceVersion=${from}`, undefined, { ...sse, "last-event-id": String(Number(from) + 2) });
    const again = new StreamReader(resumed);
    const next = (await again.until("\n\n")).split("\n");
    assert.deepEqual(next.slice(0, 2), [`id: ${latest}`, "event: ADDED"]);
    await again.cancel();
  });

  test("a malformed Last-Event-ID is 400", async () => {
    const response = await server.call("GET", "/api/v1/services?watch=true", undefined, { ...sse, "last-event-id": "x" });
    assert.equal(response.status, 400);
  });
});

test("a watch that the client closes releases its store watch", async () => {
  let open = 0;
  const counting: Store = Object.create(server.store) as Store;
  counting.watch = async (kind, from, onEvent) => {
    const stop = await server.store.watch(kind, from, onEvent);
    open++;
    return () => {
      open--;
      stop();
    };
  };
  const app = await createApiServer({ store: counting, token: server.token });
  await app.listen({ host: "127.0.0.1", port: 0 });
  try {
    const address = app.server.address();
    assert.ok(address && typeof address === "object");
    const controller = new AbortController();
    const response = await fetch(`http://127.0.0.1:${address.port}/api/v1/services?watch=true`, {
      headers: { authorization: `Bearer ${server.token}` },
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    assert.equal(open, 1);
    controller.abort();
    for (let i = 0; i < 100 && open > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(open, 0);
    // And closing the server ends the watches still open.
    const second = await fetch(`http://127.0.0.1:${address.port}/api/v1/watch`, { headers: { authorization: `Bearer ${server.token}` } });
    assert.equal(open, 1);
    await app.close();
    assert.equal(open, 0);
    await second.body?.cancel();
  } finally {
    await app.close();
  }
});
