import type { Kind, Resource, WatchEventType } from "../../model/resource.ts";
import type { StoreWatchEvent } from "../store.ts";

/** One committed write, as the events table and the live fan-out carry it. */
export interface CommittedEvent {
  revision: number;
  kind: Kind;
  type: WatchEventType;
  /** The object as stored, serialized. */
  json: string;
  /** `json` parsed, once for every watcher of this write (they share it and must not mutate it). */
  object?: Resource;
}

export type OnEvent = (event: StoreWatchEvent) => void;

/**
 * In-process fan-out of committed writes to watchers, in revision order, each revision at most
 * once per watcher.
 *
 * A watcher is registered *before* its history is read, in "replaying" mode: live events that
 * arrive meanwhile (a history callback may itself write) are buffered, then flushed after the
 * history; `last` (the highest revision the watcher is past) drops anything seen twice. So the
 * hand-over from history to live has no gap and no duplicate.
 */
export class WatchHub {
  private readonly watchers = new Set<Watcher>();
  private readonly queue: CommittedEvent[] = [];
  private dispatching = false;

  constructor(private readonly onWatcherError: (error: unknown) => void) {}

  /**
   * Called after each commit. A callback that writes re-enters here: its event is queued and
   * dispatched after the current one has reached every watcher, which keeps revision order.
   */
  publish(event: CommittedEvent): void {
    this.queue.push(event);
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        for (const watcher of this.watchers) watcher.offer(next);
      }
    } finally {
      this.dispatching = false;
    }
  }

  /** Registers a watcher that buffers live events until `replay` is called. */
  add(kind: Kind | undefined, onEvent: OnEvent): Watcher {
    const watcher = new Watcher(kind, onEvent, this.onWatcherError, () => this.watchers.delete(watcher));
    this.watchers.add(watcher);
    return watcher;
  }

  closeAll(): void {
    for (const watcher of this.watchers) watcher.close();
  }
}

export class Watcher {
  /** Highest revision this watcher has been given (or has decided to skip). */
  private last = Number.POSITIVE_INFINITY;
  private replaying = true;
  private readonly buffer: CommittedEvent[] = [];
  private closed = false;

  constructor(
    private readonly kind: Kind | undefined,
    private readonly onEvent: OnEvent,
    private readonly onError: (error: unknown) => void,
    private readonly detach: () => void,
  ) {}

  /**
   * Delivers the history (events after `after`, in order, already read), then what was buffered
   * meanwhile, then switches to live delivery.
   */
  replay(after: number, history: CommittedEvent[]): void {
    this.last = after;
    for (const event of history) this.deliver(event);
    // Delivering can append to the buffer (a callback that writes), hence shift until empty.
    for (let next = this.buffer.shift(); next; next = this.buffer.shift()) this.deliver(next);
    this.replaying = false;
  }

  offer(event: CommittedEvent): void {
    if (this.closed) return;
    if (this.replaying) this.buffer.push(event);
    else this.deliver(event);
  }

  close(): void {
    this.closed = true;
    this.buffer.length = 0;
    this.detach();
  }

  private deliver(event: CommittedEvent): void {
    if (this.closed || event.revision <= this.last) return;
    this.last = event.revision;
    if (this.kind !== undefined && event.kind !== this.kind) return;
    try {
      event.object ??= JSON.parse(event.json) as Resource;
      this.onEvent({ type: event.type, object: event.object, resourceVersion: String(event.revision), json: event.json });
    } catch (error) {
      // One broken watcher must not stop the others, nor fail the write that triggered it.
      this.onError(error);
    }
  }
}
