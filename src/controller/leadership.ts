import type { Store } from "../store/store.ts";

/** One period during which this process runs the controllers. */
export interface LeaderTerm {
  /**
   * The store the controllers read and write through. With etcd its writes are fenced: each one
   * also requires this term's leader key, so a write from a term that is over fails.
   */
  store: Store;
  /** Aborted when the term ends (leadership lost, or the process stops). */
  signal: AbortSignal;
}

/**
 * Which of the control planes sharing one store runs the controllers: at most one at a time, so
 * two never reconcile the same service into twice its machines. Implementations:
 * sole-leadership.ts (SQLite: one process owns the store, so it always leads) and
 * store/etcd/etcd-leadership.ts (a lease and a key in etcd).
 */
export interface Leadership {
  /** Campaigns until stop(): `lead` is called at the start of each term this process wins. */
  run(lead: (term: LeaderTerm) => void): void;
  isLeader(): boolean;
  /** Ends the current term (and lets another process lead at once) and stops campaigning. */
  stop(): Promise<void>;
}
