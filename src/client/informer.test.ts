import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestServer, type TestServer } from "../api/test-support.ts";
import type { Service } from "../model/kinds.ts";
import { API_VERSION, type ResourceInput, type WatchEventType } from "../model/resource.ts";
import { until } from "../proxy/test-support.ts";
import { SqliteStore } from "../store/sqlite/sqlite-store.ts";
import { storeSource } from "../store/store-source.ts";
import { apiSource } from "./api-source.ts";
import { Informer, type InformerSink } from "./informer.ts";
import { PithClient } from "./pith-client.ts";

const TEAM = "pith.dev/team";
const byTeam = { team: (s: Service) => (s.metadata.labels[TEAM] ? [s.metadata.labels[TEAM]] : []) };

const input = (name: string, team?: string, replicas = 1): ResourceInput<"Service", Service["spec"], Service["status"]> => ({
  apiVersion: API_VERSION,
  kind: "Service",
  metadata: { name, labels: team ? { [TEAM]: team } : {} },
  spec: { image: "x", replicas },
});

/** A Service at a given revision, for a source the test drives by hand. */
const at = (name: string, rv: number, replicas = 1): Service => ({
  apiVersion: API_VERSION,
  kind: "Service",
  metadata: { name, uid: name, resourceVersion: String(rv), generation: 1, labels: {}, createdAt: "", updatedAt: "" },
  spec: { image: "x", replicas },
  status: {},
});

/** A source whose list and events the test hands over itself. */
function manualSource(): { source: { description: string; run(sink: InformerSink<Service>, signal: AbortSignal): Promise<void> }; sink: () => InformerSink<Service> } {
  let sink: InformerSink<Service> | undefined;
  return {
    source: {
      description: "manual",
      run: (s, signal) =>
        new Promise<void>((resolve) => {
          sink = s;
          signal.addEventListener("abort", () => resolve(), { once: true });
        }),
    },
    sink: () => sink!,
  };
}

/** Every handler call, as "type name rv". */
function recorder(informer: Informer<Service>, replay = true): string[] {
  const calls: string[] = [];
  const note = (type: string, s: Service) => calls.push(`${type} ${s.metadata.name} ${s.metadata.resourceVersion}`);
  informer.addHandler({ added: (s) => note("added", s), updated: (_old, s) => note("updated", s), deleted: (s) => note("deleted", s) }, { replay });
  return calls;
}

describe("Informer over the SQLite store", () => {
  let dir: string;
  let store: SqliteStore;
  const stop = new AbortController();
  let informer: Informer<Service>;
  let running: Promise<void>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "pith-informer-"));
    store = SqliteStore.open(join(dir, "state.db"));
    await store.create(input("listed", "blue"));
    informer = new Informer(storeSource<Service>(store, "Service"), { indexes: byTeam });
    running = informer.run(stop.signal);
  });

  after(async () => {
    stop.abort();
    await running;
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("lists, then follows the watch from the list's revision; indexes follow label changes", async () => {
    await informer.synced();
    assert.equal(informer.hasSynced(), true);
    assert.equal(informer.get("listed")?.spec.replicas, 1);
    const calls = recorder(informer);
    assert.deepEqual(calls, [`added listed ${informer.get("listed")!.metadata.resourceVersion}`], "a late handler hears of what is cached");

    // The store delivers its watch before a write resolves: the cache is current at once.
    const created = await store.create(input("web", "blue"));
    assert.equal(informer.get("web")?.metadata.resourceVersion, created.metadata.resourceVersion);
    assert.deepEqual(informer.byIndex("team", "blue").map((s) => s.metadata.name).sort(), ["listed", "web"]);

    const moved = await store.update({ ...input("web", "green", 3), metadata: { name: "web", labels: { [TEAM]: "green" } } });
    assert.equal(informer.get("web")?.spec.replicas, 3);
    assert.deepEqual(informer.byIndex("team", "blue").map((s) => s.metadata.name), ["listed"]);
    assert.deepEqual(informer.byIndex("team", "green").map((s) => s.metadata.name), ["web"]);

    const deleted = await store.delete("Service", "web");
    assert.equal(informer.get("web"), undefined);
    assert.deepEqual(informer.byIndex("team", "green"), []);
    assert.deepEqual(informer.indexValues("team"), ["blue"]);
    assert.deepEqual(calls.slice(1), [
      `added web ${created.metadata.resourceVersion}`,
      `updated web ${moved.metadata.resourceVersion}`,
      `deleted web ${deleted.metadata.resourceVersion}`,
    ]);
    assert.equal(informer.resourceVersion, deleted.metadata.resourceVersion);
  });

  test("a handler that throws is reported, and neither the cache nor the other handlers miss the change", async () => {
    const errors: unknown[] = [];
    const guarded = new Informer(storeSource<Service>(store, "Service"), { onError: (e) => errors.push(e) });
    const stopGuarded = new AbortController();
    const run = guarded.run(stopGuarded.signal);
    await guarded.synced();
    guarded.addHandler({ added: () => { throw new Error("broken handler"); } }, { replay: false });
    const heard: string[] = [];
    guarded.addHandler({ added: (s) => heard.push(s.metadata.name) }, { replay: false });
    await store.create(input("after-throw"));
    assert.equal(guarded.get("after-throw")?.metadata.name, "after-throw");
    assert.deepEqual(heard, ["after-throw"]);
    assert.equal((errors[0] as Error).message, "broken handler");
    stopGuarded.abort();
    await run;
  });
});

describe("Informer's revision guard", () => {
  test("an older event, list or echo never overwrites a newer object, nor brings a deleted one back", async () => {
    const manual = manualSource();
    const informer = new Informer(manual.source);
    const stop = new AbortController();
    const running = informer.run(stop.signal);
    const sink = manual.sink();
    assert.equal(informer.hasSynced(), false);
    let synced = false;
    void informer.synced().then(() => (synced = true));
    sink.replace([at("a", 5), at("b", 6)], "6");
    assert.equal(informer.hasSynced(), true);
    const calls = recorder(informer, false);

    sink.apply("MODIFIED", at("a", 8, 2));
    sink.apply("MODIFIED", at("a", 7, 9)); // late: older than what is cached
    sink.apply("MODIFIED", at("a", 8, 9)); // the same revision again
    assert.equal(informer.get("a")?.spec.replicas, 2);

    // A write's answer goes in at once; its watch echo later changes nothing.
    informer.observe(at("b", 10, 4));
    sink.apply("MODIFIED", at("b", 10, 4));
    assert.equal(informer.get("b")?.spec.replicas, 4);

    sink.apply("DELETED", at("a", 11));
    sink.apply("MODIFIED", at("a", 9, 3)); // older than the deletion
    assert.equal(informer.get("a"), undefined);

    // A list taken before b's write (rv 9) keeps the newer b, and still misses nothing it knows.
    sink.replace([at("a", 8, 2), at("b", 6)], "9");
    assert.equal(informer.get("b")?.spec.replicas, 4);
    assert.equal(informer.get("a"), undefined, "a list older than a deletion does not undo it");

    // A newer list is the truth: c is new, b (absent, older than the list) is gone.
    sink.replace([at("c", 12)], "12");
    assert.deepEqual(informer.list().map((s) => s.metadata.name), ["c"]);
    assert.deepEqual(calls, ["updated a 8", "updated b 10", "deleted a 11", "added c 12", "deleted b 10"]);
    await informer.synced();
    assert.equal(synced, true);
    stop.abort();
    await running;
  });
});

describe("Informer over the API", () => {
  let server: TestServer;
  before(async () => {
    // A short history: a few writes while the watch is away compact the revision it would resume from.
    server = await startTestServer({ store: { historyLimit: 3 } });
  });
  after(async () => {
    await server.close();
  });

  test("relists after 410 Gone: changes made while it was away arrive as changes, deletions included", async () => {
    const client = new PithClient({ server: server.url, token: server.token });
    await client.create(input("kept"));
    await client.create(input("doomed"));
    const disconnects: string[] = [];
    // A long reconnect delay: the writes below are all made before the client comes back.
    const informer = new Informer(apiSource(client, "Service", { backoff: { initialMs: 300, maxMs: 300 }, onDisconnect: (e) => disconnects.push(e.message) }));
    const stop = new AbortController();
    const running = informer.run(stop.signal);
    await informer.synced();
    const calls: [WatchEventType, string, number | undefined][] = [];
    informer.addHandler(
      {
        added: (s) => calls.push(["ADDED", s.metadata.name, s.spec.replicas]),
        updated: (_old, s) => calls.push(["MODIFIED", s.metadata.name, s.spec.replicas]),
        deleted: (s) => calls.push(["DELETED", s.metadata.name, s.spec.replicas]),
      },
      { replay: false },
    );
    await client.create(input("live"));
    await until(() => informer.get("live") !== undefined, 2000, "the live event");

    server.app.server.closeAllConnections();
    await until(() => disconnects.length > 0, 2000, "the watch to notice the cut");
    await server.store.delete("Service", "doomed");
    await server.store.update(input("kept", undefined, 5));
    for (let i = 0; i < 4; i++) await server.store.create(input(`filler-${i}`));
    await until(() => informer.get("doomed") === undefined && informer.get("filler-3") !== undefined, 5000, "the relist");

    assert.equal(informer.get("kept")?.spec.replicas, 5);
    // In name order, as a list hands them over: resumed events would have come in revision order (doomed first).
    assert.deepEqual(informer.list().map((s) => s.metadata.name).sort(), ["filler-0", "filler-1", "filler-2", "filler-3", "kept", "live"]);
    assert.deepEqual(
      calls.filter(([, name]) => !name.startsWith("filler")),
      [["ADDED", "live", 1], ["MODIFIED", "kept", 5], ["DELETED", "doomed", 1]],
    );
    // It keeps watching from the relist's revision.
    await client.create(input("after-relist"));
    await until(() => informer.get("after-relist") !== undefined, 2000, "an event after the relist");
    stop.abort();
    await running;
  });
});
