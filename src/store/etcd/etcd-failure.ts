/**
 * What a failed etcd request tells an operator. etcd refuses some requests outright (bad
 * credentials, a full database, an oversized write, too much load): those say what to fix, and a
 * refused write did not happen. Anything else (no answer in time, no leader, a member
 * unreachable) is the cluster's absence, and a write may still commit: a leader that lost its
 * quorum keeps the proposal in its log, and if it leads again once the others are back, the
 * write commits then.
 */
export interface EtcdFailure {
  hint: string;
  /** A write that failed this way may still take effect later. */
  mayStillCommit: boolean;
}

/** etcd's definite refusals, by the text its errors carry, each with what the operator can do. */
const REFUSALS: readonly { pattern: RegExp; hint: string }[] = [
  { pattern: /permission denied|authentication failed|invalid auth|user name not found|not capable/i, hint: "Check --etcd-user, its password and its role's permissions on Pith's prefix" },
  {
    pattern: /database space exceeded/i,
    hint: "etcd's database is full and it takes no writes: compact its history and defragment its members (etcdctl compact, etcdctl defrag), then etcdctl alarm disarm; or raise its --quota-backend-bytes",
  },
  { pattern: /request is too large|too many operations in txn/i, hint: "The write is larger than etcd accepts (its --max-request-bytes and --max-txn-ops)" },
  { pattern: /too many requests/i, hint: "etcd is shedding load (its members fell behind on applying writes): try again shortly" },
];

export function etcdFailure(what: string, reason: string): EtcdFailure {
  const refusal = REFUSALS.find((r) => r.pattern.test(reason));
  if (refusal) return { hint: refusal.hint, mayStillCommit: false };
  return { hint: "Is a majority of its members up and reachable?", mayStillCommit: what === "write" };
}
