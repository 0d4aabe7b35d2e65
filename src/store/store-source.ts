import { setTimeout as sleep } from "node:timers/promises";
import type { InformerSink, InformerSource } from "../client/informer.ts";
import type { Kind, Resource } from "../model/resource.ts";
import { type Store, StoreError } from "./store.ts";

/** Retry delays while the store is unreachable (etcd without a quorum). */
const RETRY_INITIAL_MS = 100;
const RETRY_MAX_MS = 5000;

/**
 * An informer's objects straight from the store, for the controllers in the control-plane
 * process: no HTTP, and events arrive before the write that caused them resolves, so a
 * controller reads its own writes from the cache.
 *
 * It lists, then watches from the list's revision until the abort. When the watch cannot start
 * or ends (Gone: its history was compacted; Unavailable: the store is unreachable), it lists
 * again, after a back-off if the store was unreachable; it never gives up while not aborted.
 */
export function storeSource<R extends Resource>(store: Store, kind: R["kind"] & Kind): InformerSource<R> {
  return {
    description: `${kind} from the store`,
    async run(sink: InformerSink<R>, signal: AbortSignal): Promise<void> {
      let retryMs = RETRY_INITIAL_MS;
      const stopped = new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener("abort", () => resolve(), { once: true });
      });
      while (!signal.aborted) {
        let reason: StoreError | undefined;
        try {
          reason = await listAndWatch(store, kind, sink, stopped);
        } catch (e) {
          if (!(e instanceof StoreError) || (e.code !== "Gone" && e.code !== "Unavailable")) throw e;
          reason = e;
        }
        if (reason?.code === "Unavailable") {
          await sleep(retryMs, undefined, { signal }).catch(() => {});
          retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
        } else {
          retryMs = RETRY_INITIAL_MS;
        }
      }
    },
  };
}

/** One list and the watch after it; resolves when stopped (undefined) or when the store ended the watch (why). */
async function listAndWatch<R extends Resource>(store: Store, kind: R["kind"] & Kind, sink: InformerSink<R>, stopped: Promise<void>): Promise<StoreError | undefined> {
  const list = await store.list<R>(kind);
  sink.replace(list.items, list.resourceVersion);
  let ended: (error: StoreError) => void = () => {};
  const end = new Promise<StoreError>((resolve) => (ended = resolve));
  const unwatch = await store.watch(kind, list.resourceVersion, (event) => sink.apply(event.type, event.object as R), (error) => ended(error));
  try {
    return await Promise.race([stopped.then(() => undefined), end]);
  } finally {
    unwatch();
  }
}
