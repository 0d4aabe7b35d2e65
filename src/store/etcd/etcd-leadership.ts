import { setTimeout as sleep } from "node:timers/promises";
import { EtcdLeaseInvalidError, type Lease } from "etcd3";
import type { LeaderTerm, Leadership } from "../../controller/leadership.ts";
import type { EtcdStore } from "./etcd-store.ts";

export interface EtcdLeadershipOptions {
  /** What the leader key holds while this process leads (e.g. its API address and pid), for people. */
  identity: string;
  /** The lease's time to live: a dead leader's controllers move within about this (default 5 s). */
  ttlSeconds?: number;
  /** How often a follower looks whether the leader key is gone (default 250 ms). */
  pollMs?: number;
  log?: (message: string) => void;
}

export const DEFAULT_LEADER_TTL_SECONDS = 5;
/** A term ends this long before its lease could have expired, so two terms never overlap in time. */
const SAFETY_MARGIN_MS = 500;

/**
 * Leader election over etcd: the leader is whoever created `<prefix>leader`, a key on its lease.
 *
 * - A campaign is one transaction: create the key with this process's lease if it does not exist.
 *   The key's create revision identifies the term: the controllers' writes compare it (fencing,
 *   EtcdStore.fenced), so once the key is gone or re-created, a former leader writes nothing.
 * - The leader renews its lease every third of the TTL. Its term ends when a renewal says the
 *   lease is gone, or when no renewal has succeeded for TTL less a margin (measured from when the
 *   last good renewal was sent, which is before etcd received it): it stops its controllers before
 *   anyone else can have been elected.
 * - A killed leader renews nothing: etcd expires its lease after the TTL, which deletes the key,
 *   and a follower (polling every `pollMs`) creates it. A leader that stops cleanly revokes its
 *   lease, so the next one takes over at once.
 */
export class EtcdLeadership implements Leadership {
  private readonly ttlSeconds: number;
  private readonly pollMs: number;
  private readonly log: (message: string) => void;
  private readonly stopping = new AbortController();
  private term: AbortController | undefined;
  private lease: Lease | undefined;
  private campaigning: Promise<void> | undefined;

  constructor(
    private readonly store: EtcdStore,
    private readonly options: EtcdLeadershipOptions,
  ) {
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_LEADER_TTL_SECONDS;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 2) throw new Error(`the leader lease TTL must be a whole number of seconds >= 2, not ${this.ttlSeconds}`);
    this.pollMs = options.pollMs ?? 250;
    this.log = options.log ?? (() => {});
  }

  run(lead: (term: LeaderTerm) => void): void {
    if (this.campaigning) return;
    this.campaigning = this.campaign(lead).catch((error: unknown) => this.log(`leader election stopped: ${(error as Error).message}`));
  }

  isLeader(): boolean {
    return this.term !== undefined && !this.term.signal.aborted;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.endTerm("this control plane is stopping");
    await this.campaigning;
    const lease = this.lease;
    this.lease = undefined;
    // Revoking deletes the leader key now, instead of after the TTL: a clean stop hands over at once.
    if (lease) await this.store.connection.bounded("revoke the leader lease", () => lease.revoke()).catch(() => {});
  }

  private async campaign(lead: (term: LeaderTerm) => void): Promise<void> {
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      try {
        const term = await this.tryToLead();
        if (term && signal.aborted) {
          this.endTerm("this control plane is stopping"); // won while stopping: stop() revokes the lease
        } else if (term) {
          lead(term.leaderTerm);
          await this.keepLeading(term.lease, term.leaderTerm.signal);
        } else {
          await this.waitForVacancy();
        }
      } catch (error) {
        this.endTerm(`lost contact with etcd: ${(error as Error).message}`);
        if (!signal.aborted) this.log(`leader election: ${(error as Error).message}; trying again`);
        await sleep(this.pollMs * 4, undefined, { signal }).catch(() => {});
      }
    }
  }

  /** One attempt: a fresh lease, and the leader key created on it if nobody holds it. */
  private async tryToLead(): Promise<{ lease: Lease; leaderTerm: LeaderTerm } | undefined> {
    const connection = this.store.connection;
    const lease = connection.client.lease(this.ttlSeconds, { autoKeepAlive: false, deadline: new Date(Date.now() + connection.timeoutMs) });
    const sentAt = Date.now();
    const leaseId = await connection.bounded("grant a lease", () => lease.grant());
    const key = Buffer.from(this.store.keys.leader);
    const response = await connection.txn({
      compare: [{ key, target: "Create", result: "Equal", create_revision: 0 }],
      success: [{ request_put: { key, value: Buffer.from(this.options.identity), lease: leaseId } }],
      failure: [],
    });
    if (!response.succeeded) {
      await connection.bounded("revoke a lease", () => lease.revoke()).catch(() => {});
      return undefined;
    }
    this.lease = lease;
    this.lastRenewalSentAt = sentAt;
    this.term = new AbortController();
    this.log(`leading the controllers (leader key created at revision ${response.header.revision}, lease TTL ${this.ttlSeconds} s)`);
    return { lease, leaderTerm: { store: this.store.fenced({ key: this.store.keys.leader, createRevision: response.header.revision }), signal: this.term.signal } };
  }

  private lastRenewalSentAt = 0;

  /** Renews the lease until the term ends; returns when it has (lost, or stopping). */
  private async keepLeading(lease: Lease, termSignal: AbortSignal): Promise<void> {
    const ttlMs = this.ttlSeconds * 1000;
    const connection = this.store.connection;
    const watchdog = setInterval(() => {
      if (Date.now() - this.lastRenewalSentAt >= ttlMs - SAFETY_MARGIN_MS) this.endTerm(`the lease was not renewed for ${ttlMs - SAFETY_MARGIN_MS} ms`);
    }, 100);
    try {
      while (!termSignal.aborted) {
        await sleep(ttlMs / 3, undefined, { signal: termSignal }).catch(() => {});
        if (termSignal.aborted) break;
        const sentAt = Date.now();
        try {
          const renewal = () =>
            lease
              .keepaliveOnce({ deadline: new Date(Date.now() + Math.min(connection.timeoutMs, ttlMs / 3)) })
              .then((answer) => String(answer.TTL))
              .catch((error: unknown) => (error instanceof EtcdLeaseInvalidError ? "0" : Promise.reject(error)));
          if ((await connection.bounded("renew the leader lease", renewal)) === "0") {
            this.endTerm("the leader lease expired");
            break;
          }
          this.lastRenewalSentAt = sentAt;
        } catch (error) {
          // Not fatal by itself: the watchdog ends the term if renewals keep failing.
          this.log(`renewing the leader lease failed: ${(error as Error).message}`);
        }
      }
    } finally {
      clearInterval(watchdog);
    }
    if (!this.stopping.signal.aborted) {
      this.lease = undefined;
      // The lease may still be alive (a renewal answer lost): revoke it so the key is not held by a process that stopped leading.
      await connection.bounded("revoke the leader lease", () => lease.revoke()).catch(() => {});
    }
  }

  /** Returns once the leader key is gone (or on stop). */
  private async waitForVacancy(): Promise<void> {
    const key = Buffer.from(this.store.keys.leader);
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      const response = await this.store.connection.range({ key, keys_only: true });
      if (response.kvs.length === 0) return;
      await sleep(this.pollMs, undefined, { signal }).catch(() => {});
    }
  }

  private endTerm(why: string): void {
    const term = this.term;
    if (!term || term.signal.aborted) return;
    this.log(`no longer leading the controllers: ${why}`);
    term.abort(new Error(why));
  }
}
