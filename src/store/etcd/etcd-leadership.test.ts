import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { LeaderTerm } from "../../controller/leadership.ts";
import { API_VERSION } from "../../model/resource.ts";
import { until } from "../../../test/support/until.ts";
import { EtcdLeadership } from "./etcd-leadership.ts";
import { EtcdStore } from "./etcd-store.ts";
import { EtcdTestCluster, etcdMissing } from "./test-cluster.ts";

const skip = etcdMissing();
let cluster: EtcdTestCluster | undefined;
before(async () => {
  if (!skip) cluster = await EtcdTestCluster.start(3);
}, { timeout: 90_000 });
after(() => cluster?.destroy());

/** A control plane's election: its store (own connection) and the terms it was given. */
async function candidate(prefix: string, name: string, endpoints = cluster!.endpoints) {
  const store = await EtcdStore.open({ endpoints, prefix, requestTimeoutMs: 1000 });
  const leadership = new EtcdLeadership(store, { identity: name, ttlSeconds: 2, pollMs: 100 });
  const terms: LeaderTerm[] = [];
  leadership.run((term) => terms.push(term));
  return { store, leadership, terms, leading: () => leadership.isLeader() };
}

describe("EtcdLeadership", { skip, timeout: 120_000 }, () => {
  test("one leader at a time; a clean stop hands over at once; the old term's writes are fenced", async () => {
    const prefix = `/l-${randomBytes(4).toString("hex")}/`;
    const a = await candidate(prefix, "a");
    const b = await candidate(prefix, "b");
    try {
      await until("someone leads", () => a.leading() || b.leading(), { timeoutMs: 10_000, everyMs: 20 });
      assert.ok(!(a.leading() && b.leading()), "two leaders at once");
      const [first, second] = a.leading() ? [a, b] : [b, a];
      const oldTerm = first.terms[0]!;
      await first.leadership.stop();
      assert.ok(oldTerm.signal.aborted, "the term ends on stop");
      // The lease was revoked: the other takes over well before the TTL would have run out.
      const stoppedAt = Date.now();
      await until("the other leads", () => second.leading(), { timeoutMs: 10_000, everyMs: 20 });
      const tookMs = Date.now() - stoppedAt;
      assert.ok(tookMs < 2000, `took ${tookMs} ms after a clean stop`);
      await assert.rejects(
        oldTerm.store.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "late" }, spec: { image: "x", replicas: 1 } }),
        /no longer the controllers' leader/,
      );
      await second.terms[0]!.store.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "current" }, spec: { image: "x", replicas: 1 } });
    } finally {
      await a.leadership.stop();
      await b.leadership.stop();
      await a.store.close();
      await b.store.close();
    }
  });

  test("a leader cut off from etcd ends its term within the TTL, before anyone else can lead", async () => {
    const prefix = `/l-${randomBytes(4).toString("hex")}/`;
    // Reaches member 2 only: killing it cuts this candidate off while the others keep a quorum.
    const isolated = await candidate(prefix, "isolated", [cluster!.endpoints[2]!]);
    try {
      await until("the isolated candidate leads", () => isolated.leading(), { timeoutMs: 10_000, everyMs: 20 });
      const other = await candidate(prefix, "other", cluster!.endpoints.slice(0, 2));
      try {
        await cluster!.kill(2);
        const cutOffAt = Date.now();
        await until("the cut-off leader's term ends", () => !isolated.leading(), { timeoutMs: 5000, everyMs: 20 });
        const endedMs = Date.now() - cutOffAt;
        assert.equal(other.terms.length, 0, "the other led before the cut-off leader had stopped");
        assert.ok(endedMs <= 2000, `its term ended ${endedMs} ms after it was cut off (TTL 2 s)`);
        await until("the other leads", () => other.leading(), { timeoutMs: 10_000, everyMs: 20 });
      } finally {
        await other.leadership.stop();
        await other.store.close();
        await cluster!.restart(2);
      }
    } finally {
      await isolated.leadership.stop();
      await isolated.store.close();
    }
  });
});
