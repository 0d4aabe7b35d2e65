import type { IEvent, IWatchResponse } from "etcd3";
import { StoreError } from "../store.ts";
import type { EtcdConnection } from "./etcd-connection.ts";

interface WatchStream {
  on(event: "data", listener: (response: IWatchResponse) => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "end", listener: () => void): unknown;
  write(request: unknown): unknown;
  cancel(): void;
  removeAllListeners(): unknown;
}

const RECONNECT_INITIAL_MS = 100;
const RECONNECT_MAX_MS = 2000;

/**
 * One etcd watch on a key range from a revision, on a gRPC stream of its own, kept across lost
 * connections: it reconnects from the revision after the last one it delivered, so every event is
 * delivered once and in order. When etcd no longer has that revision (compacted while the stream
 * was down), the watch ends with StoreError "Gone" and the owner lists again.
 */
export class EtcdWatch {
  /** The next revision this watch needs from etcd. */
  private next: bigint;
  private stream: WatchStream | undefined;
  private closed = false;
  private retryMs = RECONNECT_INITIAL_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly waiters = new Set<{ revision: bigint; resolve: () => void }>();

  constructor(
    private readonly connection: EtcdConnection,
    private readonly range: { key: Buffer; range_end: Buffer },
    startRevision: bigint,
    private readonly onEvents: (events: IEvent[]) => void,
    private readonly onEnd: (error: StoreError) => void,
    /** The store's revision when the watch was asked for: until it has delivered that, it is replaying history. */
    private readonly liveFrom: bigint = startRevision - 1n,
  ) {
    this.next = startRevision;
  }

  /** Resolves once etcd has created the watch; rejects (StoreError) if it cannot. */
  start(): Promise<void> {
    return this.connect();
  }

  /**
   * Resolves once this watch has delivered `revision` (or anything later), has ended, or after
   * `timeoutMs`: a writer waits here so that its own watchers have seen its write when it returns.
   */
  delivered(revision: bigint, timeoutMs: number, evenWhileReplaying: boolean): Promise<void> {
    if (this.closed || this.next > revision) return Promise.resolve();
    if (this.next <= this.liveFrom && !evenWhileReplaying) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = {
        revision,
        resolve: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.resolve, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.dropStream();
    for (const waiter of [...this.waiters]) waiter.resolve();
  }

  private async connect(): Promise<void> {
    const stream = (await this.connection.bounded("watch", () => this.connection.client.watchClient.watch())) as unknown as WatchStream;
    if (this.closed) {
      stream.cancel();
      return;
    }
    this.stream = stream;
    await new Promise<void>((resolve, reject) => {
      let created = false;
      // etcd answers a create at once when it can; a stream that says nothing is as good as down.
      const creating = setTimeout(() => fail(this.connection.unavailable("start a watch", new Error(`no answer within ${this.connection.timeoutMs} ms`))), this.connection.timeoutMs);
      const fail = (error: StoreError) => {
        clearTimeout(creating);
        if (this.stream !== stream) return;
        this.dropStream();
        if (!created) reject(error);
        else if (error.code === "Gone") this.end(error);
        else this.reconnectLater();
      };
      stream.on("data", (response) => {
        if (this.stream !== stream) return;
        if (response.canceled) {
          fail(
            response.compact_revision !== undefined && String(response.compact_revision) !== "0"
              ? gone(this.next, response.compact_revision)
              : this.connection.unavailable("keep watching", new Error(response.cancel_reason || "the watch was cancelled")),
          );
          return;
        }
        if (response.created && !created) {
          created = true;
          clearTimeout(creating);
          this.retryMs = RECONNECT_INITIAL_MS;
          resolve();
        }
        this.receive(response);
      });
      stream.on("error", (error) => fail(this.connection.unavailable("keep watching", error)));
      stream.on("end", () => fail(this.connection.unavailable("keep watching", new Error("the watch stream ended"))));
      stream.write({
        create_request: { ...this.range, start_revision: this.next.toString(), prev_kv: true, progress_notify: true },
      });
    });
  }

  private receive(response: IWatchResponse): void {
    const events = response.events ?? [];
    if (events.length > 0) {
      const last = BigInt(events[events.length - 1]!.kv.mod_revision);
      this.next = last + 1n;
      this.onEvents(events);
    } else if (response.header && !response.created) {
      // A progress notification: nothing in the range changed up to this revision.
      const revision = BigInt(response.header.revision);
      if (revision >= this.next) this.next = revision + 1n;
    }
    for (const waiter of [...this.waiters]) if (waiter.revision < this.next) waiter.resolve();
  }

  private reconnectLater(): void {
    if (this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.connect().catch((error: unknown) => {
        if (this.closed) return;
        if (error instanceof StoreError && error.code === "Gone") this.end(error);
        else this.reconnectLater();
      });
    }, this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MAX_MS);
  }

  private end(error: StoreError): void {
    if (this.closed) return;
    this.close();
    this.onEnd(error);
  }

  private dropStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    if (!stream) return;
    stream.removeAllListeners();
    // A cancelled stream may still emit "error" (CANCELLED): it must not be unhandled.
    (stream as unknown as { on(event: "error", listener: () => void): void }).on("error", () => {});
    stream.cancel();
  }
}

export function gone(from: bigint, compactRevision: string | number): StoreError {
  return new StoreError(
    "Gone",
    `revision ${from - 1n} is too old: etcd compacted its history up to revision ${compactRevision}; list again and watch from the list's resourceVersion`,
  );
}
