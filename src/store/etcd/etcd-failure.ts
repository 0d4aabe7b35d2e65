/**
 * What a failed etcd request tells an operator: a hint at what to fix, and for a write, whether
 * it may still take effect.
 *
 * etcd refuses some requests outright (bad credentials, a full database, an oversized write, too
 * much load), and the hint says what to fix. The client retries a request that timed out or found
 * no leader (on another member, up to three times), so a refusal can follow an attempt that
 * reached a leader: only a credentials refusal, which every attempt meets, says that nothing was
 * written. Any other failure (no answer in time, no leader, a member unreachable) is the cluster's
 * absence, and a write may still commit: a leader that lost its quorum keeps the proposal in its
 * log, and if it leads again once the others are back, the write commits then.
 */
export interface EtcdFailure {
  hint: string;
  /** For a write that may still take effect, the sentence that says so; "" otherwise. */
  outcome: string;
}

/** etcd's definite refusals, by the text its errors carry, each with what the operator can do. */
const REFUSALS: readonly { pattern: RegExp; hint: string; everyAttempt?: true }[] = [
  { pattern: /permission denied|authentication failed|invalid auth|user name not found|not capable/i, hint: "Check --etcd-user, its password and its role's permissions on Pith's prefix", everyAttempt: true },
  {
    pattern: /database space exceeded/i,
    hint: "etcd's database is full and it takes no writes: compact its history and defragment its members (etcdctl compact, etcdctl defrag), then etcdctl alarm disarm; or raise its --quota-backend-bytes",
  },
  { pattern: /request is too large|too many operations in txn/i, hint: "The write is larger than etcd accepts (its --max-request-bytes and --max-txn-ops)" },
  { pattern: /too many requests/i, hint: "etcd is shedding load (its members fell behind on applying writes): try again shortly" },
];

export function etcdFailure(what: string, reason: string): EtcdFailure {
  const refusal = REFUSALS.find((r) => r.pattern.test(reason));
  if (refusal) {
    const outcome = what === "write" && !refusal.everyAttempt ? " An earlier attempt of this write (the client retries on another member) may have taken effect: read it before trying again." : "";
    return { hint: refusal.hint, outcome };
  }
  const outcome = what === "write" ? " The write may still take effect once a majority is back: read it before trying again." : "";
  return { hint: "Is a majority of its members up and reachable?", outcome };
}
