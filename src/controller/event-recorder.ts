import { randomBytes } from "node:crypto";
import { INVOLVED_KIND_LABEL } from "../model/labels.ts";
import { API_VERSION, type ResourceInput } from "../model/resource.ts";
import type { EventSpec, PithEvent } from "../model/kinds.ts";
import type { Informer } from "../client/informer.ts";
import type { Store } from "../store/store.ts";

/** Events kept in the store; older ones are pruned so they never crowd out real objects. */
const KEEP_EVENTS = 1000;

/** Where events go: the store (the controllers) or the API (an agent, through its PithClient). */
export interface EventSink {
  create(input: ResourceInput<"Event", EventSpec, Record<string, never>>): Promise<unknown>;
}

/** Who removes the oldest events: the store, with the Event informer so pruning sorts memory instead of parsing every event. */
export interface EventRetention {
  store: Store;
  cache?: Informer<PithEvent>;
}

/**
 * Records what happened to an object, for `pith describe` and the GUI: the one place an Event is
 * made (its name, label and time), whoever writes it.
 */
export class EventRecorder {
  private writes = 0;

  constructor(
    private readonly sink: EventSink,
    private readonly retention?: EventRetention,
  ) {}

  async record(involved: EventSpec["involved"], type: EventSpec["type"], reason: string, message: string): Promise<void> {
    await this.sink.create({
      apiVersion: API_VERSION,
      kind: "Event",
      metadata: { name: `${involved.name}.${Date.now().toString(36)}${randomBytes(2).toString("hex")}`, labels: { [INVOLVED_KIND_LABEL]: involved.kind } },
      spec: { involved, type, reason, message, at: new Date().toISOString() },
    });
    if (this.retention && ++this.writes % 100 === 0) await this.prune(this.retention);
  }

  private async prune({ store, cache }: EventRetention): Promise<void> {
    const items = cache?.hasSynced() ? cache.list() : (await store.list<PithEvent>("Event")).items;
    const excess = items.sort((a, b) => a.spec.at.localeCompare(b.spec.at)).slice(0, Math.max(0, items.length - KEEP_EVENTS));
    for (const event of excess) await store.delete("Event", event.metadata.name).catch(() => {});
  }
}
