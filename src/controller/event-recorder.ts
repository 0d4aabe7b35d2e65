import { randomBytes } from "node:crypto";
import { INVOLVED_KIND_LABEL } from "../model/labels.ts";
import { API_VERSION, type ResourceInput } from "../model/resource.ts";
import type { EventSpec, PithEvent } from "../model/kinds.ts";
import type { Informer } from "../client/informer.ts";
import type { Store } from "../store/store.ts";

/** Events kept in the store; older ones are pruned so they never crowd out real objects. */
const KEEP_EVENTS = 1000;

type EventInput = ResourceInput<"Event", EventSpec, Record<string, never>>;

/** Where events go: the store (the controllers) or the API (an agent, through its PithClient). */
export interface EventSink {
  create(input: EventInput): Promise<unknown>;
  /** A sink that can write several at once (the store) gets the events recorded in one turn of the event loop together. */
  writeMany?: Store["writeMany"];
}

/** Who removes the oldest events: the store, with the Event informer so pruning sorts memory instead of parsing every event. */
export interface EventRetention {
  store: Store;
  cache?: Informer<PithEvent>;
}

interface Queued {
  input: EventInput;
  done: (error?: unknown) => void;
}

/**
 * Records what happened to an object, for `pith describe` and the GUI: the one place an Event is
 * made (its name, label and time), whoever writes it.
 *
 * Into a store, the events recorded during one turn of the event loop are written together (one
 * writeMany: for SQLite one transaction), so a reconcile that creates or places a thousand
 * machines and does not await each event one by one writes their events at once.
 */
export class EventRecorder {
  private writes = 0;
  private queued: Queued[] = [];
  private flushing: NodeJS.Immediate | undefined;

  constructor(
    private readonly sink: EventSink,
    private readonly retention?: EventRetention,
  ) {}

  async record(involved: EventSpec["involved"], type: EventSpec["type"], reason: string, message: string): Promise<void> {
    const input: EventInput = {
      apiVersion: API_VERSION,
      kind: "Event",
      metadata: { name: `${involved.name}.${Date.now().toString(36)}${randomBytes(2).toString("hex")}`, labels: { [INVOLVED_KIND_LABEL]: involved.kind } },
      spec: { involved, type, reason, message, at: new Date().toISOString() },
    };
    if (this.sink.writeMany) await this.enqueue(input);
    else await this.sink.create(input);
    if (this.retention && ++this.writes % 100 === 0) await this.prune(this.retention);
  }

  private enqueue(input: EventInput): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ input, done: (error) => (error === undefined ? resolve() : reject(error)) });
      this.flushing ??= setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    this.flushing = undefined;
    const batch = this.queued;
    this.queued = [];
    try {
      const results = await this.sink.writeMany!(batch.map(({ input }) => ({ create: input })));
      for (const [i, { done }] of batch.entries()) {
        const result = results[i];
        done(result && "error" in result ? result.error : undefined);
      }
    } catch (error) {
      for (const { done } of batch) done(error);
    }
  }

  private async prune({ store, cache }: EventRetention): Promise<void> {
    const items = cache?.hasSynced() ? cache.list() : (await store.list<PithEvent>("Event")).items;
    const excess = items.sort((a, b) => a.spec.at.localeCompare(b.spec.at)).slice(0, Math.max(0, items.length - KEEP_EVENTS));
    // One writeMany: an event someone else removed meanwhile is just its own NotFound.
    // Pruning is best effort, as before: an unreachable store is retried at the next prune.
    if (excess.length > 0) await store.writeMany(excess.map((event) => ({ delete: { kind: "Event" as const, name: event.metadata.name } }))).catch(() => {});
  }
}
