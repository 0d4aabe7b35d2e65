import { randomBytes } from "node:crypto";
import { INVOLVED_KIND_LABEL } from "../model/labels.ts";
import { API_VERSION } from "../model/resource.ts";
import type { EventSpec, PithEvent } from "../model/kinds.ts";
import type { Informer } from "../client/informer.ts";
import type { Store } from "../store/store.ts";

/** Events kept in the store; older ones are pruned so they never crowd out real objects. */
const KEEP_EVENTS = 1000;

/** Records what happened to an object, for `pith describe` and the GUI. */
export class EventRecorder {
  private writes = 0;

  /** `cache`: the Event informer, so pruning sorts memory instead of parsing every event. */
  constructor(
    private readonly store: Store,
    private readonly cache?: Informer<PithEvent>,
  ) {}

  async record(involved: EventSpec["involved"], type: EventSpec["type"], reason: string, message: string): Promise<void> {
    const name = `${involved.name}.${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;
    await this.store.create<PithEvent>({
      apiVersion: API_VERSION,
      kind: "Event",
      metadata: { name, labels: { [INVOLVED_KIND_LABEL]: involved.kind } },
      spec: { involved, type, reason, message, at: new Date().toISOString() },
    });
    if (++this.writes % 100 === 0) await this.prune();
  }

  private async prune(): Promise<void> {
    const items = this.cache?.hasSynced() ? this.cache.list() : (await this.store.list<PithEvent>("Event")).items;
    const excess = items.sort((a, b) => a.spec.at.localeCompare(b.spec.at)).slice(0, Math.max(0, items.length - KEEP_EVENTS));
    for (const event of excess) await this.store.delete("Event", event.metadata.name).catch(() => {});
  }
}
