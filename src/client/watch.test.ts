import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, test } from "node:test";
import type { Service } from "../model/kinds.ts";
import { ApiError } from "./api-error.ts";
import { PithClient } from "./pith-client.ts";

/**
 * A stand-in API server with scripted misbehaviour: connections cut mid-stream, history replayed
 * from before the requested revision, BOOKMARKs, 410s. The real server is tested end to end in
 * test/e2e/control-plane-cli.test.ts.
 */
interface Scripted {
  log: { rv: number; type: "ADDED" | "MODIFIED" | "DELETED"; name: string }[];
  /** Called per watch request; returns what to do. */
  plan: (from: number, attempt: number) => { status?: number; replayFrom?: number; send?: number; bookmark?: number; thenCut?: boolean; partial?: boolean };
  requests: number[];
  /** The revision lists report (default: the last event's). */
  listRv?: number;
}

const service = (name: string, rv: number): Service => ({
  apiVersion: "pith.dev/v1",
  kind: "Service",
  metadata: { name, uid: name, resourceVersion: String(rv), generation: 1, labels: {}, createdAt: "", updatedAt: "" },
  spec: { image: "x" },
  status: {},
});

async function fakeServer(script: Scripted): Promise<{ url: string; server: Server }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (req.headers.authorization !== "Bearer good") {
      res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "Unauthorized", message: "bad token" } }));
      return;
    }
    if (url.searchParams.get("watch") !== "true") {
      const rv = script.listRv ?? script.log.at(-1)?.rv ?? 0;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ apiVersion: "pith.dev/v1", kind: "ServiceList", metadata: { resourceVersion: String(rv) }, items: [service("relisted", rv)] }));
      return;
    }
    const from = Number(url.searchParams.get("resourceVersion"));
    script.requests.push(from);
    const plan = script.plan(from, script.requests.length);
    if (plan.status) {
      res.writeHead(plan.status, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "Gone", message: "compacted" } }));
      return;
    }
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    const events = script.log.filter((e) => e.rv > (plan.replayFrom ?? from)).slice(0, plan.send ?? Infinity);
    for (const e of events) res.write(JSON.stringify({ type: e.type, object: service(e.name, e.rv) }) + "\n");
    if (plan.bookmark) res.write(JSON.stringify({ type: "BOOKMARK", object: { metadata: { resourceVersion: String(plan.bookmark) } } }) + "\n");
    if (plan.partial) res.write('{"type":"ADDED","object":{"metadata":{"resourceVe');
    if (plan.thenCut) setTimeout(() => res.socket?.destroy(), 20);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe("PithClient.watch", () => {
  const servers: Server[] = [];
  after(() => servers.forEach((s) => {
    s.closeAllConnections();
    s.close();
  }));

  /** Watches from `resourceVersion` until `expected` events (and relists) arrived; 5 s at most. */
  const run = async (script: Scripted, expected: number, options: { resourceVersion?: string; onRelist?: true } = {}) => {
    const { url, server } = await fakeServer(script);
    servers.push(server);
    const client = new PithClient({ server: url, token: "good" });
    const controller = new AbortController();
    const seen: string[] = [];
    const disconnects: string[] = [];
    const record = (entry: string) => {
      seen.push(entry);
      if (seen.length === expected) controller.abort();
    };
    const done = client.watch(
      "Service",
      {
        resourceVersion: options.resourceVersion ?? "0",
        signal: controller.signal,
        backoff: { initialMs: 10, maxMs: 50 },
        onDisconnect: (e) => disconnects.push(e.message),
        ...(options.onRelist ? { onRelist: (items: Service[], rv: string) => record(`RELIST ${items.map((i) => i.metadata.name).join(",")}@${rv}`) } : {}),
      },
      (event) => record(`${event.type} ${event.object.metadata.name}@${event.object.metadata.resourceVersion}`),
    );
    const timeout = setTimeout(() => controller.abort(), 5000);
    try {
      await done;
    } finally {
      clearTimeout(timeout);
      server.closeAllConnections();
    }
    return { seen, disconnects };
  };

  const log: Scripted["log"] = [
    { rv: 1, type: "ADDED", name: "a" },
    { rv: 2, type: "ADDED", name: "b" },
    { rv: 3, type: "MODIFIED", name: "a" },
    { rv: 4, type: "DELETED", name: "b" },
    { rv: 5, type: "ADDED", name: "c" },
  ];
  const all = ["ADDED a@1", "ADDED b@2", "MODIFIED a@3", "DELETED b@4", "ADDED c@5"];

  test("resumes after cut connections from the last event seen, with nothing missed or repeated", async () => {
    const script: Scripted = { log, requests: [], plan: () => ({ send: 2, thenCut: true, partial: true }) };
    const { seen, disconnects } = await run(script, 5);
    assert.deepEqual(seen, all);
    assert.deepEqual(script.requests, [0, 2, 4]);
    assert.ok(disconnects.length >= 2);
  });

  test("events a server replays from before the resume point are not delivered twice", async () => {
    const script: Scripted = { log, requests: [], plan: (from) => ({ replayFrom: Math.max(0, from - 2), send: 3, thenCut: true }) };
    assert.deepEqual((await run(script, 5)).seen, all);
  });

  test("BOOKMARKs move the resume point", async () => {
    const script: Scripted = {
      log,
      requests: [],
      plan: (_from, attempt) => (attempt === 1 ? { send: 1, bookmark: 3, thenCut: true } : {}),
    };
    assert.deepEqual((await run(script, 2)).seen, ["ADDED a@1", "DELETED b@4"]);
    assert.deepEqual(script.requests, [0, 3]);
  });

  test("410 Gone: re-lists, hands the items to onRelist, and watches on from the list's revision", async () => {
    const script: Scripted = { log, requests: [], listRv: 4, plan: (from) => (from < 3 ? { status: 410 } : { replayFrom: 2 }) };
    const { seen } = await run(script, 2, { resourceVersion: "1", onRelist: true });
    assert.deepEqual(seen, ["RELIST relisted@4", "ADDED c@5"]);
    assert.deepEqual(script.requests, [1, 4]);
  });

  test("without onRelist a 410 rejects; a refused token rejects at once", async () => {
    const gone: Scripted = { log, requests: [], plan: () => ({ status: 410 }) };
    await assert.rejects(run(gone, 1), (e: ApiError) => e.status === 410);
    const { url, server } = await fakeServer(gone);
    servers.push(server);
    const client = new PithClient({ server: url, token: "bad" });
    await assert.rejects(client.watch("Service", { resourceVersion: "0", signal: new AbortController().signal }, () => {}), (e: ApiError) => {
      assert.equal(e.status, 401);
      assert.match(e.hint ?? "", /token/);
      return true;
    });
  });
});
