import assert from "node:assert/strict";
import { test } from "node:test";
import { etcdFailure } from "./etcd-failure.ts";

test("a write etcd did not answer may still commit; one it refused did not, and the hint says what to fix", () => {
  const unanswered = etcdFailure("write", "no answer within 5000 ms");
  assert.deepEqual(unanswered, { hint: "Is a majority of its members up and reachable?", mayStillCommit: true });
  assert.equal(etcdFailure("read", "no answer within 5000 ms").mayStillCommit, false);
  assert.equal(etcdFailure("write", "14 UNAVAILABLE: No connection established").mayStillCommit, true);

  const refusals: [string, RegExp][] = [
    ["etcdserver: permission denied", /--etcd-user/],
    ["etcdserver: mvcc: database space exceeded", /compact .*defrag.*alarm disarm|--quota-backend-bytes/],
    ["etcdserver: request is too large", /--max-request-bytes/],
    ["etcdserver: too many operations in txn request", /--max-txn-ops/],
    ["etcdserver: too many requests", /shedding load/],
  ];
  for (const [reason, hint] of refusals) {
    const failure = etcdFailure("write", reason);
    assert.equal(failure.mayStillCommit, false, reason);
    assert.match(failure.hint, hint, reason);
    assert.doesNotMatch(failure.hint, /majority/, reason);
  }
});
