import assert from "node:assert/strict";
import { test } from "node:test";
import { etcdFailure } from "./etcd-failure.ts";

test("a write etcd did not answer may still commit once a majority is back; a read says nothing of the kind", () => {
  for (const reason of ["no answer within 5000 ms", "14 UNAVAILABLE: No connection established"]) {
    const failure = etcdFailure("write", reason);
    assert.equal(failure.hint, "Is a majority of its members up and reachable?");
    assert.match(failure.outcome, /may still take effect once a majority is back/);
  }
  assert.equal(etcdFailure("read", "no answer within 5000 ms").outcome, "");
});

test("a refusal's hint says what to fix, never quorum; only a credentials refusal says nothing was written", () => {
  const refusals: [string, RegExp, boolean][] = [
    ["etcdserver: permission denied", /--etcd-user/, false],
    ["etcdserver: mvcc: database space exceeded", /compact .*defrag.*alarm disarm.*--quota-backend-bytes/, true],
    ["etcdserver: request is too large", /--max-request-bytes/, true],
    ["etcdserver: too many operations in txn request", /--max-txn-ops/, true],
    ["etcdserver: too many requests", /shedding load/, true],
  ];
  for (const [reason, hint, earlierAttemptMayCommit] of refusals) {
    const failure = etcdFailure("write", reason);
    assert.match(failure.hint, hint, reason);
    assert.doesNotMatch(failure.hint + failure.outcome, /majority/, reason);
    assert.equal(/an earlier attempt of this write .* may have taken effect/i.test(failure.outcome), earlierAttemptMayCommit, reason);
    assert.equal(etcdFailure("read", reason).outcome, "", reason);
  }
});
