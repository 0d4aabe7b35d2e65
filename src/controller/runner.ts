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
  /** The keys a change concerns (e.g. a Machine's change concerns its service). */
  keysFor(event: WatchEvent): string[];
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
  private readonly queues = new Map<Reconciler, { pending: Set<string>; running: boolean; timers: Map<string, NodeJS.Timeout> }>();
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
      for (const r of this.reconcilers) if (r.watches.includes(event.object.kind)) for (const key of r.keysFor(event)) this.enqueue(r, key);
    });
    await this.resync();
    this.resyncTimer = setInterval(() => void this.resync(), this.options.resyncMs);
  }

  stop(): void {
    this.stopped = true;
    this.unwatch?.();
    clearInterval(this.resyncTimer);
    for (const q of this.queues.values()) for (const t of q.timers.values()) clearTimeout(t);
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

  private requeueAfter(reconciler: Reconciler, key: string, ms: number): void {
    const queue = this.queues.get(reconciler)!;
    clearTimeout(queue.timers.get(key));
    queue.timers.set(
      key,
      setTimeout(() => {
        queue.timers.delete(key);
        this.enqueue(reconciler, key);
      }, ms),
    );
  }
}
