/** What one piece of work may ask for: another look at its key later. */
export type WorkOutcome = { requeueAfterMs?: number } | void;

export interface WorkQueueOptions {
  /** Does the work for one key. A throw retries the key with back-off. */
  process(key: string): Promise<WorkOutcome>;
  /** Keys worked on at once (default 1). One key is never worked on twice at once. */
  concurrency?: number;
  /** Retry delay after a failure: `initialMs`, doubling per consecutive failure of that key, at most `maxMs`. */
  backoff?: { initialMs: number; maxMs: number };
  /** Told about each failure, with the delay before the key's next attempt. */
  onError?: (key: string, error: unknown, retryInMs: number) => void;
}

export const DEFAULT_BACKOFF = { initialMs: 100, maxMs: 30_000 };

/**
 * Keys waiting for work (client-go's rate-limited work queue, in one process):
 * - a key is queued at most once, however many times it is added before its turn;
 * - a key added while it is being worked on runs once more afterwards, never alongside;
 * - a key whose work fails comes back after a delay that doubles per consecutive failure of
 *   that key alone, and is forgotten by its next success.
 * Work is level-based: a key says what to look at, not what changed.
 */
export class WorkQueue {
  readonly #options: WorkQueueOptions;
  readonly #concurrency: number;
  readonly #backoff: { initialMs: number; maxMs: number };
  /** Ready keys, in the order added; none of them is being worked on. `#urgent` ones go first. */
  readonly #ready = new Set<string>();
  readonly #urgent = new Set<string>();
  readonly #active = new Set<string>();
  /** Keys added while being worked on, and whether any of those adds was urgent. */
  readonly #dirty = new Map<string, boolean>();
  readonly #delayed = new Map<string, { timer: NodeJS.Timeout; dueAt: number }>();
  readonly #failures = new Map<string, number>();
  #pumpScheduled = false;
  #stopped = false;

  constructor(options: WorkQueueOptions) {
    this.#options = options;
    this.#concurrency = options.concurrency ?? 1;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
  }

  /**
   * Queues a key now (no-op if it is already waiting). An `urgent` key goes before every key
   * that is not: e.g. a report that a machine is ready, ahead of a thousand starts.
   */
  add(key: string, options: { urgent?: boolean } = {}): void {
    if (this.#stopped) return;
    if (this.#active.has(key)) {
      this.#dirty.set(key, (this.#dirty.get(key) ?? false) || options.urgent === true);
    } else if (options.urgent) {
      if (this.#urgent.has(key)) return;
      this.#ready.delete(key);
      this.#urgent.add(key);
      this.#schedulePump();
    } else if (!this.#ready.has(key) && !this.#urgent.has(key)) {
      this.#ready.add(key);
      this.#schedulePump();
    }
  }

  /** Queues a key in `ms`, replacing any delay it had (the latest answer about it wins). */
  addAfter(key: string, ms: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#delayed.get(key)?.timer);
    const timer = setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { timer, dueAt: Date.now() + ms });
  }

  /**
   * Queues a key within `ms`: if it is already waiting, or due sooner, it keeps its turn, so a
   * burst of changes joins one piece of work.
   */
  addWithin(key: string, ms: number): void {
    if (this.#stopped || this.#ready.has(key) || this.#urgent.has(key) || this.#dirty.has(key)) return;
    const delayed = this.#delayed.get(key);
    if (delayed && delayed.dueAt <= Date.now() + ms) return;
    this.addAfter(key, ms);
  }

  /** Consecutive failures of a key since its last success. */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Keys waiting (now or later) or being worked on. */
  get pending(): number {
    return new Set([...this.#urgent, ...this.#ready, ...this.#active, ...this.#delayed.keys()]).size;
  }

  /** Drops every waiting key and delay; work under way finishes but is not repeated. */
  stop(): void {
    this.#stopped = true;
    this.#ready.clear();
    this.#urgent.clear();
    this.#dirty.clear();
    for (const { timer } of this.#delayed.values()) clearTimeout(timer);
    this.#delayed.clear();
  }

  /** Starts work after the current call stack: an add from inside a store write must not run the work inside it. */
  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    while (!this.#stopped && this.#active.size < this.#concurrency && this.#urgent.size + this.#ready.size > 0) {
      const from = this.#urgent.size > 0 ? this.#urgent : this.#ready;
      const key = from.values().next().value as string;
      from.delete(key);
      this.#active.add(key);
      void this.#work(key);
    }
  }

  async #work(key: string): Promise<void> {
    let failed = false;
    try {
      const outcome = await this.#options.process(key);
      this.#failures.delete(key);
      if (outcome?.requeueAfterMs !== undefined) this.addAfter(key, outcome.requeueAfterMs);
    } catch (error) {
      failed = true;
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      const delay = Math.min(this.#backoff.initialMs * 2 ** (failures - 1), this.#backoff.maxMs);
      // The retry covers any change meanwhile: work is level-based, so it need not run sooner.
      this.#dirty.delete(key);
      this.addAfter(key, delay);
      try {
        this.#options.onError?.(key, error, delay);
      } catch {
        // a reporting failure must not stop the queue
      }
    } finally {
      this.#active.delete(key);
      const dirty = this.#dirty.get(key);
      this.#dirty.delete(key);
      if (!failed && dirty !== undefined) this.add(key, { urgent: dirty });
      this.#pump();
    }
  }
}
