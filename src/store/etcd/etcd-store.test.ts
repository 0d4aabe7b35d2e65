import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Informer } from "../../client/informer.ts";
import type { Machine, MachineSpec, MachineStatus } from "../../model/kinds.ts";
import { API_VERSION, type ResourceInput } from "../../model/resource.ts";
import { storeSource } from "../store-source.ts";
import { type Store, StoreError } from "../store.ts";
import { storeContract } from "../store-contract.ts";
import { until } from "../../../test/support/until.ts";
import { EtcdStore, type EtcdStoreOptions } from "./etcd-store.ts";
import { EtcdTestCluster, etcdMissing } from "./test-cluster.ts";

const skip = etcdMissing();
let cluster: EtcdTestCluster | undefined;
const quiet = { onWatcherError: () => {} };
const prefixes = new WeakMap<Store, string>();

before(async () => {
  if (!skip) cluster = await EtcdTestCluster.start(3);
}, { timeout: 90_000 });
after(() => cluster?.destroy());

/** A store on the test cluster under a prefix of its own: every store starts empty. */
async function open(options: Partial<EtcdStoreOptions> = {}): Promise<EtcdStore> {
  const prefix = options.prefix ?? `/t-${randomBytes(4).toString("hex")}/`;
  const store = await EtcdStore.open({ endpoints: cluster!.endpoints, prefix, requestTimeoutMs: 3000, ...quiet, ...options });
  prefixes.set(store, prefix);
  return store;
}

const machineSpec = (memoryMiB = 64): MachineSpec => ({ image: "sha256:abc", memoryMiB, vcpus: 1, desiredState: "running" });
const machine = (name: string, labels: Record<string, string> = {}): ResourceInput<"Machine", MachineSpec, MachineStatus> => ({
  apiVersion: API_VERSION,
  kind: "Machine",
  metadata: { name, labels },
  spec: machineSpec(),
});

/** The cluster's log says why a wait failed (a member that did not come back, an election). */
const WAIT = { timeoutMs: 20_000, everyMs: 50, context: () => cluster?.log() ?? "" };

if (skip) {
  test("etcd store", { skip }, () => {});
} else {
  storeContract("etcd (3 members)", () => open(), { reopen: (store) => open({ prefix: prefixes.get(store)! }) });

  describe("EtcdStore on a 3-member cluster", { timeout: 240_000 }, () => {
    test("a write's own watchers have its event when it resolves (controllers read their writes)", async () => {
      const store = await open();
      try {
        const seen = new Set<string>();
        const stop = await store.watch("Machine", undefined, (e) => seen.add(e.resourceVersion));
        for (let i = 0; i < 20; i++) {
          const created = await store.create(machine(`m${i}`));
          assert.ok(seen.has(created.metadata.resourceVersion), `write ${i} resolved before its event reached the watcher`);
        }
        stop();
      } finally {
        await store.close();
      }
    });

    test("two stores on one prefix (two control planes): a write computed from an older version never overwrites a newer one", async () => {
      const a = await open();
      const b = await open({ prefix: prefixes.get(a)! });
      try {
        const created = await a.create(machine("m1"));
        await b.get("Machine", "m1"); // b now remembers this version
        const byA = await a.update<Machine>({ ...machine("m1"), spec: machineSpec(128) });
        // b's write names the version it read: Conflict, not an overwrite.
        await assert.rejects(
          b.update({ ...machine("m1"), metadata: { name: "m1", resourceVersion: created.metadata.resourceVersion }, status: { phase: "ready" } }),
          (e: unknown) => e instanceof StoreError && e.code === "Conflict",
        );
        // Without a version, b writes on top of a's change (its status only), never under it.
        const byB = await b.update<Machine>({ ...machine("m1"), spec: byA.spec, status: { phase: "ready" } });
        assert.equal(byB.metadata.generation, byA.metadata.generation);
        assert.equal((byB.spec as { memoryMiB: number }).memoryMiB, 128);
        // a remembers its own older version; its next write still lands on top of b's.
        const again = await a.update<Machine>({ ...machine("m1"), spec: byA.spec });
        assert.deepEqual(again.status, { phase: "ready" }, "a's write lost b's status");
        await b.delete("Machine", "m1");
        await assert.rejects(a.update(machine("m1")), (e: unknown) => e instanceof StoreError && e.code === "NotFound");
      } finally {
        await b.close();
        await a.close();
      }
    });

    test("a value under the prefix that Pith did not write is reported, not fatal", async () => {
      const reported: unknown[] = [];
      const store = await open({ onWatcherError: (e) => reported.push(e) });
      try {
        await store.create(machine("good"));
        const seen: string[] = [];
        const stop = await store.watch("Machine", undefined, (e) => seen.push(e.object.metadata.name));
        await store.connection.client.put(store.keys.object("Machine", "garbage")).value("{not json").exec();
        await store.create(machine("after"));
        await until("the watch goes on past the bad value", () => seen.includes("after"), WAIT);
        assert.deepEqual((await store.list("Machine")).items.map((m) => m.metadata.name), ["after", "good"]);
        await assert.rejects(store.get("Machine", "garbage"), (e: unknown) => e instanceof StoreError && e.code === "Invalid" && /not an object Pith wrote/.test(e.message));
        assert.ok(reported.length >= 2, "the bad value was reported by the watch and the list");
        stop();
      } finally {
        await store.close();
      }
    });

    test("lists of more than one page are one snapshot", async () => {
      const store = await open();
      try {
        for (let i = 0; i < 1100; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => store.create(machine(`m-${String(i + j).padStart(4, "0")}`, { n: String((i + j) % 2) }))));
        const all = await store.list("Machine");
        assert.equal(all.items.length, 1100);
        assert.equal(all.items[0]!.metadata.name, "m-0000");
        assert.equal(all.items[1099]!.metadata.name, "m-1099");
        assert.equal((await store.list("Machine", { labels: { n: "1" } })).items.length, 550);
      } finally {
        await store.close();
      }
    });

    test("a deposed leader's fenced write fails and changes nothing", async () => {
      const store = await open();
      try {
        const leaderKey = store.keys.leader;
        const put = async () => (await store.connection.client.put(leaderKey).value("a").exec()).header.revision;
        const first = await put(); // created at this revision
        const fenced = store.fenced({ key: leaderKey, createRevision: first });
        await fenced.create(machine("by-leader"));
        // Deposed: the key is deleted and another control plane creates it again.
        await store.connection.client.delete().key(leaderKey).exec();
        await put();
        await assert.rejects(fenced.create(machine("late")), (e: unknown) => e instanceof StoreError && e.code === "Conflict" && /no longer the controllers' leader/.test(e.message));
        await assert.rejects(fenced.update({ ...machine("by-leader"), status: { phase: "ready" } }), /no longer the controllers' leader/);
        await assert.rejects(fenced.delete("Machine", "by-leader"), /no longer the controllers' leader/);
        assert.equal(await store.get("Machine", "late"), undefined);
        assert.deepEqual((await store.get<Machine>("Machine", "by-leader"))?.status, {});
      } finally {
        await store.close();
      }
    });

    test("tokens: add, lookup, list, revoke by id or name; a name is taken once", async () => {
      const store = await open();
      try {
        const digest = randomBytes(32);
        const added = await store.tokens.add({ id: "t1", name: "edge", role: "proxy" }, digest);
        assert.equal(added.role, "proxy");
        await assert.rejects(store.tokens.add({ id: "t2", name: "edge", role: "admin" }, digest), (e: unknown) => e instanceof StoreError && e.code === "AlreadyExists");
        assert.equal(await store.tokens.lookup("t2"), undefined, "a refused add leaves nothing");
        const found = await store.tokens.lookup("t1");
        assert.deepEqual(found?.digest, digest);
        await store.tokens.add({ id: "t3", name: "agent", role: "node", node: "n1" }, digest);
        assert.deepEqual((await store.tokens.list()).map((t) => t.name), ["edge", "agent"]);
        assert.equal((await store.tokens.revoke("edge"))?.id, "t1");
        assert.equal((await store.tokens.revoke("t3"))?.name, "agent");
        assert.deepEqual(await store.tokens.list(), []);
        await store.tokens.add({ id: "t4", name: "edge", role: "proxy" }, digest); // the name is free again
      } finally {
        await store.close();
      }
    });

    test("one member down: reads, writes and watches go on", async () => {
      const store = await open();
      try {
        const seen: string[] = [];
        const stop = await store.watch("Machine", undefined, (e) => seen.push(e.object.metadata.name));
        await store.create(machine("before"));
        await cluster!.kill(0);
        try {
          await until("a write succeeds with one member down", async () => {
            try {
              await store.create(machine("during"));
              return true;
            } catch (e) {
              // The client may first try the dead member; it must move on within the timeout.
              if (e instanceof StoreError && e.code === "Unavailable") return false;
              if (e instanceof StoreError && e.code === "AlreadyExists") return true;
              throw e;
            }
          }, WAIT);
          assert.ok(await store.get("Machine", "during"));
          await until("the watch sees the write made with one member down", () => seen.includes("during"), WAIT);
        } finally {
          await cluster!.restart(0);
        }
        stop();
      } finally {
        await store.close();
      }
    });

    test("two members down: writes fail fast with Unavailable, which says they may still take effect; each is whole or absent; all recovers when they return", async () => {
      const store = await open({ requestTimeoutMs: 2000 });
      try {
        const before = await store.create(machine("m1"));
        const informer = new Informer(storeSource<Machine>(store, "Machine"), {});
        const abort = new AbortController();
        const running = informer.run(abort.signal);
        await until("the informer syncs", () => informer.get("m1") !== undefined, WAIT);
        await cluster!.kill(1);
        await cluster!.kill(2);
        try {
          const started = Date.now();
          await assert.rejects(store.update({ ...machine("m1"), status: { phase: "ready" } }), (e: unknown) => {
            assert.ok(e instanceof StoreError, String(e));
            assert.equal(e.code, "Unavailable");
            assert.match(e.message, /majority of its members/);
            assert.match(e.message, /may still take effect/);
            return true;
          });
          await assert.rejects(store.create(machine("m2")), (e: unknown) => e instanceof StoreError && e.code === "Unavailable");
          assert.ok(Date.now() - started < 2 * 4000, `failing took ${Date.now() - started} ms: the timeout must bound it`);
        } finally {
          await cluster!.restart(1);
          await cluster!.restart(2);
        }
        // It works again (the client shuns members that failed for up to 5 s), and the
        // informer's watch came back by itself.
        await until("writes succeed again", async () => {
          try {
            await store.create(machine("after"));
            return true;
          } catch (e) {
            if (e instanceof StoreError && e.code === "AlreadyExists") return true;
            return false;
          }
        }, WAIT);
        // An unanswered write is not a refused one: a leader that lost its quorum keeps the
        // proposal and commits it if it leads again once the others are back. Each write is
        // there whole or not at all.
        const m1 = await store.get("Machine", "m1");
        if (m1?.metadata.resourceVersion === before.metadata.resourceVersion) assert.deepEqual(m1, before);
        else assert.deepEqual([m1?.spec, m1?.status], [before.spec, { phase: "ready" }], "the update, whole");
        const m2 = await store.get("Machine", "m2");
        if (m2) assert.deepEqual([m2.spec, m2.status], [machine("m2").spec, {}], "the create, whole");
        await until("the informer sees writes after the cluster recovered", () => informer.get("after") !== undefined, WAIT);
        abort.abort();
        await running;
      } finally {
        await store.close();
      }
    });

    test("compaction: a watch from a compacted revision is Gone, and an informer whose watch resumes after compaction lists again", async () => {
      // The writer talks to the members that stay up: this test is about compaction, not about a
      // client finding its way around a dead member (which has a test of its own).
      const writer = await open({ endpoints: cluster!.endpoints.slice(1) });
      const prefix = prefixes.get(writer)!;
      // The informer's store talks to member 0 only, so killing member 0 cuts its watch.
      const reader = await open({ prefix, endpoints: [cluster!.endpoints[0]!], requestTimeoutMs: 2000 });
      try {
        const start = await writer.revision();
        await writer.create(machine("a"));
        const informer = new Informer(storeSource<Machine>(reader, "Machine"), {});
        const abort = new AbortController();
        const running = informer.run(abort.signal);
        await until("the informer syncs", () => informer.get("a") !== undefined, WAIT);

        await cluster!.kill(0);
        try {
          // If member 0 led, the others elect a leader first; on a loaded host that can take
          // longer than a write's timeout.
          await cluster!.waitHealthy();
          await writer.delete("Machine", "a");
          for (let i = 0; i < 5; i++) await writer.create(machine(`b${i}`));
          const latest = await writer.revision();
          await writer.compact(latest);
          await assert.rejects(writer.watch("Machine", start, () => {}), (e: unknown) => e instanceof StoreError && e.code === "Gone" && /list again/.test(e.message));
        } finally {
          await cluster!.restart(0);
        }
        // Its watch reconnects from before the compaction: Gone, so it lists again.
        await until("the informer relists after its watch was compacted away", () => informer.get("a") === undefined && informer.get("b4") !== undefined, WAIT);
        assert.deepEqual(informer.list().map((m) => m.metadata.name).sort(), ["b0", "b1", "b2", "b3", "b4"]);
        abort.abort();
        await running;
      } finally {
        await reader.close();
        await writer.close();
      }
    });
  });
}
