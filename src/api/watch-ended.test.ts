import assert from "node:assert/strict";
import { test } from "node:test";
import { PithClient } from "../client/index.ts";
import { until } from "../../test/support/until.ts";
import { StoreError, type Store, type WatchEnd } from "../store/store.ts";
import { createApiServer } from "./api-server.ts";
import { API_VERSION, type ResourceInput } from "../model/resource.ts";
import type { ServiceSpec, ServiceStatus } from "../model/kinds.ts";
import { startTestServer } from "./test-support.ts";

const service = (name: string): ResourceInput<"Service", ServiceSpec, ServiceStatus> => ({ apiVersion: API_VERSION, kind: "Service", metadata: { name }, spec: { image: "hello", replicas: 1 } });

const WAIT = { timeoutMs: 10_000 };

test("a watch the store ends with Gone (etcd compacted it) is an ERROR line, and the client lists again and watches on", async (t) => {
  const server = await startTestServer({ server: { heartbeatMs: 200 } });
  t.after(() => server.close());
  // The store's watches, each with the way to end it as etcd would after compaction.
  const ends: WatchEnd[] = [];
  const store: Store = Object.create(server.store) as Store;
  store.watch = (kind, from, onEvent, onEnd) => {
    if (onEnd) ends.push(onEnd);
    return server.store.watch(kind, from, onEvent, onEnd);
  };
  const app = await createApiServer({ store, token: server.token, heartbeatMs: 200 });
  await app.listen({ host: "127.0.0.1", port: 0 });
  t.after(async () => {
    app.server.closeAllConnections();
    await app.close();
  });
  const address = app.server.address();
  assert.ok(address && typeof address === "object");
  const client = new PithClient({ server: `http://127.0.0.1:${address.port}`, token: server.token });

  await client.create(service("a"));
  const relists: string[][] = [];
  const events: string[] = [];
  const abort = new AbortController();
  const { metadata } = await client.list("Service");
  const watching = client.watch(
    "Service",
    { resourceVersion: metadata.resourceVersion, signal: abort.signal, onRelist: (items) => void relists.push(items.map((s) => s.metadata.name)) },
    (event) => void events.push(`${event.type} ${event.object.metadata.name}`),
  );
  await until("the API watches the store", () => ends.length === 1, WAIT);
  await client.create(service("b"));
  await until("the watch delivers b", () => events.includes("ADDED b"), WAIT);

  // Meanwhile (while "disconnected" from etcd) c is created and the history compacted: the store ends the watch.
  await server.store.create(service("c"));
  ends[0]!(new StoreError("Gone", "revision 5 is too old: etcd compacted its history"));
  await until("the client lists again", () => relists.length === 1, WAIT);
  assert.deepEqual(relists[0], ["a", "b", "c"]);
  // And watches on from the list.
  await until("the client watches again", () => ends.length === 2, WAIT);
  await client.create(service("d"));
  await until("the new watch delivers d", () => events.includes("ADDED d"), WAIT);
  abort.abort();
  await watching;
});
