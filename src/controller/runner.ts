import type { Kind, Resource, WatchEvent } from "../model/resource.ts";
import { reconcileErrors, reconcileSeconds } from "../shared/metrics.ts";
import type { Store } from "../store/store.ts";
import { type ControllerInformers, informersFor } from "./informers.ts";
import { DEFAULT_BACKOFF, WorkQueue } from "./work-queue.ts";

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
  keysFor(event: ChangeEvent): (string | { key: string; afterMs: number })[];
  /** Every key worth a periodic look (the resync). */
  allKeys(): Promise<string[]>;
  reconcile(key: string): Promise<Outcome>;
}

export type Outcome = { requeueAfterMs?: number } | void;

/** A change as the caches saw it: with `old`, the version it replaced (MODIFIED only). */
export type ChangeEvent = WatchEvent & { old?: Resource };

export interface ControllerRunnerOptions {
  resyncMs: number;
  onError?: (reconciler: string, key: string, error: unknown) => void;
  /** Retry delays after a failed reconcile, per key (default 100 ms doubling to 30 s). */
  backoff?: { initialMs: number; maxMs: number };
  /** The caches whose changes queue keys; default: the store's shared ones (informersFor). */
  informers?: ControllerInformers;
}

/**
 * Turns cache changes into queued keys, and outcomes into queue actions and metrics. Each
 * reconciler has its own work queue with one worker, so one key is never reconciled twice at
 * once; a key queued while it is being reconciled runs again afterwards, and a key whose
 * reconcile fails is retried with back-off of its own.
 */
export class ControllerRunner {
  private readonly queues = new Map<Reconciler, WorkQueue>();
  private readonly informers: ControllerInformers;
  private readonly unsubscribe: (() => void)[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    store: Store,
    private readonly reconcilers: Reconciler[],
    private readonly options: ControllerRunnerOptions,
  ) {
    this.informers = options.informers ?? informersFor(store);
    for (const r of reconcilers) {
      this.queues.set(
        r,
        new WorkQueue({
          process: (key) => this.reconcile(r, key),
          backoff: options.backoff ?? DEFAULT_BACKOFF,
          onError: (key, error) => options.onError?.(r.name, key, error),
        }),
      );
    }
  }

  async start(): Promise<void> {
    await this.informers.start();
    if (this.stopped) return;
    const kinds = new Set(this.reconcilers.flatMap((r) => r.watches));
    for (const kind of kinds) {
      const informer = this.informers.of(kind);
      if (!informer) throw new Error(`controllers cannot watch ${kind}: it has no informer`);
      const concerned = this.reconcilers.filter((r) => r.watches.includes(kind));
      const route = (event: ChangeEvent) => {
        for (const r of concerned) {
          for (const key of r.keysFor(event)) {
            if (typeof key === "string") this.enqueue(r, key);
            else this.queues.get(r)!.addWithin(key.key, key.afterMs);
          }
        }
      };
      // No replay: the resync below looks at everything that exists.
      this.unsubscribe.push(
        informer.addHandler(
          {
            added: (object: Resource) => route({ type: "ADDED", object }),
            updated: (old: Resource, object: Resource) => route({ type: "MODIFIED", object, old }),
            deleted: (object: Resource) => route({ type: "DELETED", object }),
          },
          { replay: false },
        ),
      );
    }
    await this.resync();
    this.resyncTimer = setInterval(() => void this.resync(), this.options.resyncMs);
  }

  stop(): void {
    this.stopped = true;
    for (const off of this.unsubscribe) off();
    clearInterval(this.resyncTimer);
    for (const q of this.queues.values()) q.stop();
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
    this.queues.get(reconciler)!.add(key);
  }

  private async reconcile(reconciler: Reconciler, key: string): Promise<Outcome> {
    if (this.stopped) return;
    const timer = reconcileSeconds.startTimer({ controller: reconciler.name });
    try {
      return await reconciler.reconcile(key);
    } catch (e) {
      reconcileErrors.inc({ controller: reconciler.name });
      throw e;
    } finally {
      timer();
    }
  }
}
