import type { Kind, WatchEvent } from "../model/resource.ts";
import { reconcileErrors, reconcileSeconds } from "../shared/metrics.ts";
import type { Store } from "../store/store.ts";

/**
 * A reconciler in the controller-runtime sense: it gets only a key, reads the current state,
 * acts, and says when to look again. Level-based: a missed or repeated event costs nothing,
 * because every reconcile starts from what is, not from what changed.
 */
export interface Reconciler {
  readonly name: string;
  /** Kinds whose changes may concern this reconciler. */
  readonly watches: Kind[];
  /**
   * The keys a change concerns (e.g. a Machine's change concerns its service). A key with
   * `afterMs` is reconciled that much later, and every change for it meanwhile joins that one
   * reconcile: a thousand machines turning ready cost a few service reconciles, not a thousand.
   */
  keysFor(event: WatchEvent): (string | { key: string; afterMs: number })[];
  /** Every key worth a periodic look (the resync). */
  allKeys(): Promise<string[]>;
  reconcile(key: string): Promise<Outcome>;
}

export type Outcome = { requeueAfterMs?: number } | void;

/**
 * Turns store changes into queued keys and outcomes into queue actions and metrics. Each
 * reconciler has one worker, so one key is never reconciled twice at once; a key queued while
 * it is being reconciled runs again afterwards.
 */
export class ControllerRunner {
  private readonly queues = new Map<Reconciler, { pending: Set<string>; running: boolean; timers: Map<string, { timer: NodeJS.Timeout; dueAt: number }> }>();
  private unwatch: (() => void) | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly reconcilers: Reconciler[],
    private readonly options: { resyncMs: number; onError?: (reconciler: string, key: string, error: unknown) => void },
  ) {
    for (const r of reconcilers) this.queues.set(r, { pending: new Set(), running: false, timers: new Map() });
  }

  async start(): Promise<void> {
    this.unwatch = await this.store.watch(undefined, await this.store.revision(), (event) => {
      for (const r of this.reconcilers) {
        if (!r.watches.includes(event.object.kind)) continue;
        for (const key of r.keysFor(event)) {
          if (typeof key === "string") this.enqueue(r, key);
          else this.enqueueSoon(r, key.key, key.afterMs);
        }
      }
    });
    await this.resync();
    this.resyncTimer = setInterval(() => void this.resync(), this.options.resyncMs);
  }

  stop(): void {
    this.stopped = true;
    this.unwatch?.();
    clearInterval(this.resyncTimer);
    for (const q of this.queues.values()) for (const t of q.timers.values()) clearTimeout(t.timer);
  }

  private async resync(): Promise<void> {
    for (const r of this.reconcilers) {
      try {
        for (const key of await r.allKeys()) this.enqueue(r, key);
      } catch (e) {
        this.options.onError?.(r.name, "(resync)", e);
      }
    }
  }

  enqueue(reconciler: Reconciler, key: string): void {
    if (this.stopped) return;
    const queue = this.queues.get(reconciler)!;
    queue.pending.add(key);
    if (!queue.running) void this.work(reconciler);
  }

  private async work(reconciler: Reconciler): Promise<void> {
    const queue = this.queues.get(reconciler)!;
    queue.running = true;
    try {
      while (queue.pending.size > 0 && !this.stopped) {
        const key = queue.pending.values().next().value as string;
        queue.pending.delete(key);
        const timer = reconcileSeconds.startTimer({ controller: reconciler.name });
        let outcome: Outcome;
        try {
          outcome = await reconciler.reconcile(key);
        } catch (e) {
          reconcileErrors.inc({ controller: reconciler.name });
          this.options.onError?.(reconciler.name, key, e);
          outcome = { requeueAfterMs: 1000 };
        } finally {
          timer();
        }
        if (outcome?.requeueAfterMs !== undefined) this.requeueAfter(reconciler, key, outcome.requeueAfterMs);
      }
    } finally {
      queue.running = false;
    }
  }

  /** Like requeueAfter, but a key already due sooner keeps its time: changes join that reconcile. */
  private enqueueSoon(reconciler: Reconciler, key: string, ms: number): void {
    const queue = this.queues.get(reconciler)!;
    const scheduled = queue.timers.get(key);
    if (queue.pending.has(key) || (scheduled && scheduled.dueAt <= Date.now() + ms)) return;
    this.requeueAfter(reconciler, key, ms);
  }

  private requeueAfter(reconciler: Reconciler, key: string, ms: number): void {
    const queue = this.queues.get(reconciler)!;
    clearTimeout(queue.timers.get(key)?.timer);
    const timer = setTimeout(() => {
      queue.timers.delete(key);
      this.enqueue(reconciler, key);
    }, ms);
    queue.timers.set(key, { timer, dueAt: Date.now() + ms });
  }
}
