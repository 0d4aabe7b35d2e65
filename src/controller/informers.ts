import { Informer, untilSynced } from "../client/informer.ts";
import type { Image, Machine, PithEvent, PithNode, Secret, Service } from "../model/kinds.ts";
import type { Kind, Resource } from "../model/resource.ts";
import { serviceOf } from "../model/service-rules.ts";
import { storeSource } from "../store/store-source.ts";
import type { Store } from "../store/store.ts";

/** Machine indexes: by owning service (its label), by the node it is placed on, and those waiting for one. */
export const BY_SERVICE = "service";
export const BY_NODE = "node";
export const UNSCHEDULED = "unscheduled";
export const isUnscheduled = (m: Machine): boolean => !m.spec.node && m.spec.desiredState === "running";

/**
 * The caches the controllers share, one informer per kind over the store, so a change is parsed
 * once for all of them and a reconcile reads memory, not SQLite.
 */
export class ControllerInformers {
  readonly machines: Informer<Machine>;
  readonly services: Informer<Service>;
  readonly nodes: Informer<PithNode>;
  readonly images: Informer<Image>;
  /** Secrets, for the keyed hashes that enter machine templates (the values stay sealed). */
  readonly secrets: Informer<Secret>;
  /** Events, for pruning the oldest (EventRecorder), not for queueing work. */
  readonly events: Informer<PithEvent>;
  readonly #abort = new AbortController();
  readonly #running: Promise<void>[] = [];
  #started = false;

  constructor(store: Store, options: { onError?: (error: unknown) => void } = {}) {
    this.machines = new Informer(storeSource<Machine>(store, "Machine"), {
      ...options,
      indexes: {
        [BY_SERVICE]: (m) => {
          const service = serviceOf(m);
          return service ? [service] : [];
        },
        [BY_NODE]: (m) => (m.spec.node ? [m.spec.node] : []),
        [UNSCHEDULED]: (m) => (isUnscheduled(m) ? [UNSCHEDULED] : []),
      },
    });
    this.services = new Informer(storeSource<Service>(store, "Service"), options);
    this.nodes = new Informer(storeSource<PithNode>(store, "Node"), options);
    this.images = new Informer(storeSource<Image>(store, "Image"), options);
    this.secrets = new Informer(storeSource<Secret>(store, "Secret"), options);
    this.events = new Informer(storeSource<PithEvent>(store, "Event"), options);
  }

  /**
   * Lists and watches every kind (once; later calls wait for the same sync). Resolves when all are
   * synced; rejects if one cannot list (e.g. the store is closed), rather than waiting forever.
   */
  async start(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      for (const informer of this.all()) {
        const running = informer.run(this.#abort.signal);
        running.catch((e: unknown) => console.error("pith controllers: an informer stopped:", e));
        this.#running.push(running);
      }
    }
    await untilSynced(this.all(), Promise.all(this.#running));
  }

  /** The informer whose changes may queue work for a kind, or undefined (Events queue none). */
  of(kind: Kind): Informer<Resource> | undefined {
    const byKind: Partial<Record<Kind, Informer<Resource>>> = {
      Machine: this.machines as unknown as Informer<Resource>,
      Service: this.services as unknown as Informer<Resource>,
      Node: this.nodes as unknown as Informer<Resource>,
      Image: this.images as unknown as Informer<Resource>,
      Secret: this.secrets as unknown as Informer<Resource>,
    };
    return byKind[kind];
  }

  stop(): void {
    this.#abort.abort();
  }

  private all(): Informer<Resource>[] {
    return [this.machines, this.services, this.nodes, this.images, this.secrets, this.events] as unknown as Informer<Resource>[];
  }
}

const shared = new WeakMap<Store, ControllerInformers>();

/**
 * The informers of a store, made and started on first use: what a reconciler built with only a
 * store reads. The control plane makes its own and stops them on close; these end with the store.
 */
export function informersFor(store: Store): ControllerInformers {
  let informers = shared.get(store);
  if (!informers) shared.set(store, (informers = new ControllerInformers(store)));
  return informers;
}
