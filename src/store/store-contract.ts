import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { API_VERSION, type Kind, type ResourceInput, type WatchEvent } from "../model/resource.ts";
import type { Machine } from "../model/kinds.ts";
import { until } from "../../test/support/until.ts";
import { type Store, StoreError, type StoreErrorCode } from "./store.ts";
import { MAX_OBJECT_BYTES } from "./validate.ts";

/**
 * The behaviour every Store implementation must have: each backend's test file calls
 * storeContract() with a way to open a fresh, empty store.
 *
 * Revisions are only assumed to increase, never to start at 1 or to be contiguous numbers: a
 * backend like etcd shares its revision counter with writes outside this store. Where the tests
 * need "every revision", they use the revisions the store returned for their own writes.
 */
export interface StoreContractOptions {
  /** Opens a fresh store whose watch history keeps only about the last `limit` events. */
  openWithHistoryLimit?: (limit: number) => Promise<Store> | Store;
  /** Opens a new instance on the same data as `store`, which the contract has already closed. */
  reopen?: (store: Store) => Promise<Store> | Store;
}

type Event = WatchEvent & { resourceVersion: string };

export function storeContract(name: string, open: () => Promise<Store> | Store, options: StoreContractOptions = {}): void {
  /** Runs a test body with a fresh store, closed afterwards whatever happens. */
  const withStore = (body: (store: Store) => Promise<void>) => async () => {
    const store = await open();
    try {
      await body(store);
    } finally {
      await store.close();
    }
  };

  describe(`Store contract: ${name}`, () => {
    describe("objects", () => {
      test("create assigns metadata and defaults; get returns the same object", withStore(async (store) => {
        const before = BigInt(await store.revision());
        const created = await store.create(machine("m1"));
        assert.equal(created.apiVersion, API_VERSION);
        assert.equal(created.kind, "Machine");
        assert.equal(created.metadata.name, "m1");
        assert.match(created.metadata.uid, /^[0-9a-f-]{36}$/);
        assert.equal(created.metadata.generation, 1);
        assert.deepEqual(created.metadata.labels, {});
        assert.deepEqual(created.status, {});
        assert.ok(BigInt(created.metadata.resourceVersion) > before);
        assert.equal(await store.revision(), created.metadata.resourceVersion);
        assert.ok(!Number.isNaN(Date.parse(created.metadata.createdAt)));
        assert.equal(created.metadata.updatedAt, created.metadata.createdAt);
        assert.deepEqual(await store.get("Machine", "m1"), created);
        assert.equal(await store.get("Machine", "missing"), undefined);
        assert.equal(await store.get("Service", "m1"), undefined, "names are per kind");
      }));

      test("create keeps given labels and status; uids are unique", withStore(async (store) => {
        const a = await store.create(machine("a", { labels: { app: "web" }, status: { phase: "pending" } }));
        const b = await store.create(machine("b"));
        assert.deepEqual(a.metadata.labels, { app: "web" });
        assert.deepEqual(a.status, { phase: "pending" });
        assert.notEqual(a.metadata.uid, b.metadata.uid);
      }));

      test("create of a taken name fails with AlreadyExists and changes nothing", withStore(async (store) => {
        const first = await store.create(machine("m1"));
        await rejectsWith(store.create(machine("m1", { spec: { memoryMiB: 999 } })), "AlreadyExists");
        assert.deepEqual(await store.get("Machine", "m1"), first);
        assert.equal(await store.revision(), first.metadata.resourceVersion, "a failed write uses no revision");
      }));

      test("update replaces spec/labels/status, keeps uid and createdAt", withStore(async (store) => {
        const created = await store.create(machine("m1", { labels: { a: "1" } }));
        const updated = await store.update(machine("m1", { labels: { b: "2" }, spec: { memoryMiB: 128 }, status: { phase: "ready" } }));
        assert.equal(updated.metadata.uid, created.metadata.uid);
        assert.equal(updated.metadata.createdAt, created.metadata.createdAt);
        assert.ok(Date.parse(updated.metadata.updatedAt) >= Date.parse(created.metadata.updatedAt));
        assert.ok(BigInt(updated.metadata.resourceVersion) > BigInt(created.metadata.resourceVersion));
        assert.deepEqual(updated.metadata.labels, { b: "2" });
        assert.equal((updated.spec as { memoryMiB: number }).memoryMiB, 128);
        assert.deepEqual(updated.status, { phase: "ready" });
        assert.deepEqual(await store.get("Machine", "m1"), updated);
      }));

      test("generation increases only when spec changes (key order does not count)", withStore(async (store) => {
        await store.create(machine("m1"));
        const statusOnly = await store.update(machine("m1", { status: { phase: "booting" } }));
        assert.equal(statusOnly.metadata.generation, 1);
        const reordered = await store.update({ ...machine("m1"), spec: { vcpus: 1, memoryMiB: 64, image: "sha256:abc", desiredState: "running" } });
        assert.equal(reordered.metadata.generation, 1);
        const changed = await store.update(machine("m1", { spec: { memoryMiB: 256 } }));
        assert.equal(changed.metadata.generation, 2);
        const again = await store.update(machine("m1", { spec: { memoryMiB: 512 } }));
        assert.equal(again.metadata.generation, 3);
      }));

      test("update without status keeps the stored status", withStore(async (store) => {
        await store.create(machine("m1", { status: { phase: "ready", pid: 42 } }));
        const updated = await store.update(machine("m1", { spec: { memoryMiB: 256 } }));
        assert.deepEqual(updated.status, { phase: "ready", pid: 42 });
      }));

      test("update of a missing object fails with NotFound", withStore(async (store) => {
        await rejectsWith(store.update(machine("nope")), "NotFound");
      }));

      test("update with a stale resourceVersion fails with Conflict; the current one succeeds", withStore(async (store) => {
        const created = await store.create(machine("m1"));
        const updated = await store.update(machine("m1", { spec: { memoryMiB: 256 } }));
        const stale = machine("m1", { spec: { memoryMiB: 1 }, resourceVersion: created.metadata.resourceVersion });
        await rejectsWith(store.update(stale), "Conflict");
        assert.deepEqual(await store.get("Machine", "m1"), updated);
        assert.equal(await store.revision(), updated.metadata.resourceVersion, "a failed write uses no revision");
        const fresh = await store.update(machine("m1", { spec: { memoryMiB: 2 }, resourceVersion: updated.metadata.resourceVersion }));
        assert.equal((fresh.spec as { memoryMiB: number }).memoryMiB, 2);
      }));

      test("delete returns the object at the delete's revision; get then finds nothing", withStore(async (store) => {
        const created = await store.create(machine("m1", { status: { phase: "stopped" } }));
        const deleted = await store.delete("Machine", "m1");
        assert.equal(deleted.metadata.uid, created.metadata.uid);
        assert.deepEqual(deleted.spec, created.spec);
        assert.deepEqual(deleted.status, created.status);
        assert.ok(BigInt(deleted.metadata.resourceVersion) > BigInt(created.metadata.resourceVersion));
        assert.equal(await store.revision(), deleted.metadata.resourceVersion);
        assert.equal(await store.get("Machine", "m1"), undefined);
        // The name is free again, for a new object.
        const recreated = await store.create(machine("m1"));
        assert.notEqual(recreated.metadata.uid, created.metadata.uid);
      }));

      test("delete of a missing object fails with NotFound", withStore(async (store) => {
        await rejectsWith(store.delete("Machine", "nope"), "NotFound");
      }));

      test("delete with a stale expectedResourceVersion fails with Conflict", withStore(async (store) => {
        const created = await store.create(machine("m1"));
        const updated = await store.update(machine("m1", { status: { phase: "ready" } }));
        await rejectsWith(store.delete("Machine", "m1", { expectedResourceVersion: created.metadata.resourceVersion }), "Conflict");
        assert.deepEqual(await store.get("Machine", "m1"), updated);
        await store.delete("Machine", "m1", { expectedResourceVersion: updated.metadata.resourceVersion });
        assert.equal(await store.get("Machine", "m1"), undefined);
      }));

      test("resourceVersions strictly increase across kinds and operations", withStore(async (store) => {
        const versions = [
          (await store.create(machine("m1"))).metadata.resourceVersion,
          (await store.create(service("s1"))).metadata.resourceVersion,
          (await store.update(machine("m1", { status: { phase: "ready" } }))).metadata.resourceVersion,
          (await store.create(node("n1"))).metadata.resourceVersion,
          (await store.delete("Service", "s1")).metadata.resourceVersion,
          (await store.update(node("n1"))).metadata.resourceVersion,
        ];
        assertIncreasing(versions);
        assert.equal(await store.revision(), versions.at(-1));
      }));

      test("invalid kinds and names fail with Invalid", withStore(async (store) => {
        await rejectsWith(store.create({ ...machine("m1"), kind: "Bogus" as "Machine" }), "Invalid");
        for (const bad of ["", "UPPER", "-lead", "trail-", "has_underscore", "a/b", "x".repeat(254)]) {
          await rejectsWith(store.create(machine(bad)), "Invalid");
        }
        await rejectsWith(store.get("Machine", "Bad Name"), "Invalid");
        await rejectsWith(store.list("Nope" as Kind), "Invalid");
        await rejectsWith(store.watch("Nope" as Kind, undefined, () => {}), "Invalid");
        // Too large to keep: refused, and nothing written.
        const huge = { A: "x".repeat(MAX_OBJECT_BYTES) };
        await rejectsWith(store.create(machine("huge", { spec: { env: huge } })), "Invalid");
        assert.equal(await store.get("Machine", "huge"), undefined);
        await store.create(machine("grows"));
        await rejectsWith(store.update(machine("grows", { spec: { env: huge } })), "Invalid");
        assert.equal((await store.get<Machine>("Machine", "grows"))?.metadata.generation, 1);
        // Valid edge cases.
        await store.create(machine("a"));
        await store.create(machine("a.b-c.0"));
        await store.create(machine("x".repeat(253)));
      }));
    });

    describe("writeMany", () => {
      test("each write succeeds or fails on its own, answered in its position, in revision order", withStore(async (store) => {
        await store.create(machine("taken"));
        // Not taken's revision: a stale one for it.
        const stale = (await store.create(machine("goes"))).metadata.resourceVersion;
        const events = collect();
        const stop = await store.watch("Machine", await store.revision(), events.push);
        const results = await store.writeMany([
          { create: machine("new") },
          { create: machine("taken") },
          { update: machine("missing") },
          { update: machine("taken", { status: { phase: "ready" }, resourceVersion: stale }) },
          { create: machine("Bad Name") },
          { create: machine("huge", { spec: { env: { A: "x".repeat(MAX_OBJECT_BYTES) } } }) },
          { update: machine("taken", { status: { phase: "booting" } }) },
          { delete: { kind: "Machine", name: "goes" } },
          { delete: { kind: "Machine", name: "missing" } },
        ]);
        const codes = results.map((r) => ("error" in r ? r.error.code : "ok"));
        assert.deepEqual(codes, ["ok", "AlreadyExists", "NotFound", "Conflict", "Invalid", "Invalid", "ok", "ok", "NotFound"]);
        for (const r of results) if ("error" in r) assert.ok(r.error instanceof StoreError);
        const written = results.flatMap((r) => ("object" in r ? [r.object] : []));
        assertIncreasing(written.map((o) => o.metadata.resourceVersion));
        assert.deepEqual(await store.get("Machine", "new"), written[0]);
        assert.equal((await store.get<Machine>("Machine", "taken"))?.status.phase, "booting");
        assert.equal(await store.get("Machine", "goes"), undefined);
        assert.equal(await store.get("Machine", "huge"), undefined, "a refused write leaves nothing");
        assert.equal(await store.revision(), written.at(-1)!.metadata.resourceVersion);
        await events.waitFor(3);
        await events.settle();
        stop();
        assert.deepEqual(events.summary(), [
          ["ADDED", "new", written[0]!.metadata.resourceVersion],
          ["MODIFIED", "taken", written[1]!.metadata.resourceVersion],
          ["DELETED", "goes", written[2]!.metadata.resourceVersion],
        ]);
        assert.deepEqual(await store.writeMany([]), []);
      }));
    });

    describe("list", () => {
      test("returns one kind's objects sorted by name, at the current revision", withStore(async (store) => {
        for (const n of ["c", "a", "b"]) await store.create(machine(n));
        await store.create(service("a-service"));
        const { items, resourceVersion } = await store.list("Machine");
        assert.deepEqual(items.map((m) => m.metadata.name), ["a", "b", "c"]);
        assert.ok(items.every((m) => m.kind === "Machine"));
        assert.equal(resourceVersion, await store.revision());
        for (const item of items) assert.ok(BigInt(item.metadata.resourceVersion) <= BigInt(resourceVersion));
        assert.deepEqual((await store.list("Image")).items, []);
      }));

      test("filters by labels: every given label must be equal", withStore(async (store) => {
        await store.create(machine("a", { labels: { app: "web", tier: "front" } }));
        await store.create(machine("b", { labels: { app: "web" } }));
        await store.create(machine("c", { labels: { app: "db", tier: "front" } }));
        const names = async (labels: Record<string, string>) => (await store.list("Machine", { labels })).items.map((m) => m.metadata.name);
        assert.deepEqual(await names({ app: "web" }), ["a", "b"]);
        assert.deepEqual(await names({ app: "web", tier: "front" }), ["a"]);
        assert.deepEqual(await names({ tier: "front" }), ["a", "c"]);
        assert.deepEqual(await names({ app: "nope" }), []);
        assert.deepEqual(await names({}), ["a", "b", "c"]);
      }));

      test("label keys with dots, slashes and quotes match exactly", withStore(async (store) => {
        await store.create(machine("a", { labels: { "pith.dev/service": "web", 'odd"key': "1" } }));
        await store.create(machine("b", { labels: { "pith.dev/service": "api" } }));
        await store.create(machine("c", { labels: { pith: "web" } }));
        const names = async (labels: Record<string, string>) => (await store.list("Machine", { labels })).items.map((m) => m.metadata.name);
        assert.deepEqual(await names({ "pith.dev/service": "web" }), ["a"]);
        assert.deepEqual(await names({ 'odd"key': "1" }), ["a"]);
        assert.deepEqual(await names({ "pith.dev/service": "web", 'odd"key': "2" }), []);
      }));
    });

    describe("watch", () => {
      test("from now: sees live ADDED, MODIFIED, DELETED in order, not earlier writes", withStore(async (store) => {
        await store.create(machine("before"));
        const events = collect();
        const stop = await store.watch("Machine", undefined, events.push);
        const added = await store.create(machine("m1"));
        const modified = await store.update(machine("m1", { status: { phase: "ready" } }));
        const deleted = await store.delete("Machine", "m1");
        await events.waitFor(3);
        stop();
        assert.deepEqual(events.summary(), [
          ["ADDED", "m1", added.metadata.resourceVersion],
          ["MODIFIED", "m1", modified.metadata.resourceVersion],
          ["DELETED", "m1", deleted.metadata.resourceVersion],
        ]);
        assert.deepEqual(events.list[0]!.object, added);
        assert.deepEqual(events.list[1]!.object, modified);
        assert.deepEqual(events.list[2]!.object, deleted);
        for (const event of events.list) assert.equal(event.object.metadata.resourceVersion, event.resourceVersion);
      }));

      test("from a revision: replays exactly the later events, then continues live", withStore(async (store) => {
        await store.create(machine("old"));
        const from = await store.revision();
        const history = [
          await store.create(machine("m1")),
          await store.update(machine("m1", { spec: { memoryMiB: 1 } })),
          await store.delete("Machine", "old"),
        ];
        const events = collect();
        const stop = await store.watch("Machine", from, events.push);
        const live = await store.create(machine("m2"));
        await events.waitFor(4);
        stop();
        assert.deepEqual(events.summary(), [
          ["ADDED", "m1", history[0]!.metadata.resourceVersion],
          ["MODIFIED", "m1", history[1]!.metadata.resourceVersion],
          ["DELETED", "old", history[2]!.metadata.resourceVersion],
          ["ADDED", "m2", live.metadata.resourceVersion],
        ]);
      }));

      test("from the current revision replays nothing", withStore(async (store) => {
        await store.create(machine("m1"));
        const events = collect();
        const stop = await store.watch(undefined, await store.revision(), events.push);
        await events.settle();
        assert.deepEqual(events.list, []);
        stop();
      }));

      test("filters by kind; undefined kind sees every kind", withStore(async (store) => {
        const machines = collect();
        const services = collect();
        const all = collect();
        const stops = [
          await store.watch("Machine", undefined, machines.push),
          await store.watch("Service", undefined, services.push),
          await store.watch(undefined, undefined, all.push),
        ];
        await store.create(machine("m1"));
        await store.create(service("s1"));
        await store.create(node("n1"));
        await all.waitFor(3);
        await machines.settle();
        for (const stop of stops) stop();
        assert.deepEqual(machines.list.map((e) => e.object.kind), ["Machine"]);
        assert.deepEqual(services.list.map((e) => e.object.kind), ["Service"]);
        assert.deepEqual(all.list.map((e) => e.object.kind), ["Machine", "Service", "Node"]);
        // Replay filters by kind too.
        const replayed = collect();
        const stop = await store.watch("Node", "0", replayed.push);
        await replayed.waitFor(1);
        await replayed.settle();
        stop();
        assert.deepEqual(replayed.list.map((e) => e.object.metadata.name), ["n1"]);
      }));

      test("no gap and no duplicate when the watch starts while writes are in flight", withStore(async (store) => {
        const written: string[] = [];
        const writes = 120;
        // Writes in concurrent batches, so for an async backend some are in flight whenever a
        // watch starts.
        const writer = (async () => {
          for (let i = 0; i < writes; i += 4) {
            const batch = [0, 1, 2, 3].map((j) => store.create(machine(`m-${i + j}`)));
            for (const created of await Promise.all(batch)) written.push(created.metadata.resourceVersion);
            await sleep(0); // let the test start watches between batches even on a synchronous backend
          }
        })();
        const watches: { from: string; events: ReturnType<typeof collect>; stop: () => void }[] = [];
        for (const at of [8, 40, 80]) {
          // A write that fails ends the wait at once: the count would never come.
          await until(`${at} writes are done`, () => written.length >= at, { ...WAIT, failing: writer });
          const from = sortRevisions(written)[at - 5]!;
          const events = collect();
          watches.push({ from, events, stop: await store.watch("Machine", from, events.push) });
        }
        await writer;
        for (const { from, events, stop } of watches) {
          const expected = sortRevisions(written).filter((rv) => BigInt(rv) > BigInt(from));
          await events.waitFor(expected.length);
          await events.settle();
          stop();
          assert.deepEqual(events.list.map((e) => e.resourceVersion), expected, `watch from ${from}`);
        }
      }));

      test("unsubscribe stops delivery", withStore(async (store) => {
        const events = collect();
        const stop = await store.watch("Machine", undefined, events.push);
        await store.create(machine("m1"));
        await events.waitFor(1);
        stop();
        await store.create(machine("m2"));
        await events.settle();
        assert.deepEqual(events.list.map((e) => e.object.metadata.name), ["m1"]);
        stop(); // a second call is harmless
      }));

      test("a throwing watcher affects neither the store nor other watchers", withStore(async (store) => {
        let thrown = 0;
        const stopBad = await store.watch("Machine", undefined, () => {
          thrown++;
          throw new Error("watcher bug (expected by the test)");
        });
        const good = collect();
        const stopGood = await store.watch("Machine", undefined, good.push);
        const first = await store.create(machine("m1"));
        const second = await store.create(machine("m2"));
        await good.waitFor(2);
        stopBad();
        stopGood();
        assert.ok(thrown >= 1);
        assert.deepEqual(good.list.map((e) => e.resourceVersion), [first.metadata.resourceVersion, second.metadata.resourceVersion]);
        assert.ok(await store.get("Machine", "m2"));
      }));

      test("a revision that is not a number is Invalid", withStore(async (store) => {
        await rejectsWith(store.watch(undefined, "yesterday", () => {}), "Invalid");
      }));

      if (options.openWithHistoryLimit) {
        const openSmall = options.openWithHistoryLimit;
        test("a watch from before the retained history fails with Gone", async () => {
          const store = await openSmall(5);
          try {
            const start = await store.revision();
            const written: string[] = [];
            for (let i = 0; i < 20; i++) written.push((await store.create(machine(`m${i}`))).metadata.resourceVersion);
            await rejectsWith(store.watch(undefined, start, () => {}), "Gone");
            await rejectsWith(store.watch("Machine", written[0]!, () => {}), "Gone");
            // Recent history is still there.
            const events = collect();
            const stop = await store.watch("Machine", written[17]!, events.push);
            await events.waitFor(2);
            await events.settle();
            stop();
            assert.deepEqual(events.list.map((e) => e.resourceVersion), written.slice(18));
          } finally {
            await store.close();
          }
        });
      }
    });

    if (options.reopen) {
      const reopen = options.reopen;
      test("persistence: a reopened store has the same objects, revision and history", async () => {
        const first = await open();
        let firstOpen = true;
        let second: Store | undefined;
        try {
          const start = await first.revision();
          await first.create(machine("m1", { labels: { app: "web" } }));
          await first.create(service("s1"));
          await first.update(machine("m1", { status: { phase: "ready" } }));
          await first.create(machine("m2"));
          await first.delete("Machine", "m2");
          const machines = await first.list("Machine");
          const services = await first.list("Service");
          const revision = await first.revision();
          await first.close();
          firstOpen = false;

          second = await reopen(first);
          assert.equal(await second.revision(), revision);
          assert.deepEqual(await second.list("Machine"), machines);
          assert.deepEqual(await second.list("Service"), services);
          const replayed = collect();
          const stop = await second.watch(undefined, start, replayed.push);
          await replayed.waitFor(5);
          stop();
          assert.deepEqual(replayed.list.map((e) => e.type), ["ADDED", "ADDED", "MODIFIED", "ADDED", "DELETED"]);
          const next = await second.create(machine("m3"));
          assert.ok(BigInt(next.metadata.resourceVersion) > BigInt(revision));
        } finally {
          if (firstOpen) await first.close();
          await second?.close();
        }
      });
    }
  });
}

// ---- fixtures and helpers ----

type Overrides = { labels?: Record<string, string>; status?: unknown; spec?: Record<string, unknown>; resourceVersion?: string };

function machine(name: string, o: Overrides = {}): ResourceInput<"Machine"> {
  return {
    apiVersion: API_VERSION,
    kind: "Machine",
    metadata: { name, ...(o.labels && { labels: o.labels }), ...(o.resourceVersion && { resourceVersion: o.resourceVersion }) },
    spec: { image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running", ...o.spec },
    ...(o.status !== undefined && { status: o.status }),
  };
}

function service(name: string): ResourceInput<"Service"> {
  return { apiVersion: API_VERSION, kind: "Service", metadata: { name }, spec: { image: "hello", replicas: 1 } };
}

function node(name: string): ResourceInput<"Node"> {
  return { apiVersion: API_VERSION, kind: "Node", metadata: { name }, spec: { capacity: { memoryMiB: 1024, vcpus: 2 }, accelerator: "tcg" } };
}

async function rejectsWith(promise: Promise<unknown>, code: StoreErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof StoreError, `expected a StoreError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

function assertIncreasing(versions: string[]): void {
  for (let i = 1; i < versions.length; i++) {
    assert.ok(BigInt(versions[i]!) > BigInt(versions[i - 1]!), `resourceVersions not increasing: ${versions.join(", ")}`);
  }
}

function sortRevisions(revisions: string[]): string[] {
  return [...revisions].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
}

/** The contract's waits: an async backend shows a write later, but within a few seconds. */
const WAIT = { timeoutMs: 5000, everyMs: 2 };

/** Collects watch events; async backends deliver later, so tests wait for a count. */
function collect() {
  const list: Event[] = [];
  return {
    list,
    push: (event: Event) => void list.push(event),
    waitFor: async (count: number) => {
      await until(() => `${count} events (have ${list.length})`, () => list.length >= count, WAIT);
      assertIncreasing(list.map((e) => e.resourceVersion));
    },
    /** Gives a backend a moment to deliver anything unexpected before the test asserts "nothing more". */
    settle: () => sleep(30),
    summary: () => list.map((e) => [e.type, e.object.metadata.name, e.resourceVersion]),
  };
}
