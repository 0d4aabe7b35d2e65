import type { Store } from "../store/store.ts";
import type { LeaderTerm, Leadership } from "./leadership.ts";

/** The only control plane of its store (SQLite): one term, from run() until stop(). */
export class SoleLeadership implements Leadership {
  readonly #abort = new AbortController();
  #leading = false;

  constructor(private readonly store: Store) {}

  run(lead: (term: LeaderTerm) => void): void {
    if (this.#abort.signal.aborted) return;
    this.#leading = true;
    lead({ store: this.store, signal: this.#abort.signal });
  }

  isLeader(): boolean {
    return this.#leading && !this.#abort.signal.aborted;
  }

  async stop(): Promise<void> {
    this.#abort.abort();
  }
}
