import type { InformerSink, InformerSource } from "../client/informer.ts";
import type { Kind, Resource } from "../model/resource.ts";
import { type Store, StoreError } from "./store.ts";

/**
 * An informer's objects straight from the store, for the controllers in the control-plane
 * process: no HTTP, and events arrive before the write that caused them resolves, so a
 * controller reads its own writes from the cache.
 */
export function storeSource<R extends Resource>(store: Store, kind: R["kind"] & Kind): InformerSource<R> {
  return {
    description: `${kind} from the store`,
    async run(sink: InformerSink<R>, signal: AbortSignal): Promise<void> {
      while (!signal.aborted) {
        const list = await store.list<R>(kind);
        sink.replace(list.items, list.resourceVersion);
        let unwatch: () => void;
        try {
          unwatch = await store.watch(kind, list.resourceVersion, (event) => sink.apply(event.type, event.object as R));
        } catch (e) {
          // Writes between the list and the watch were compacted away: list again.
          if (e instanceof StoreError && e.code === "Gone") continue;
          throw e;
        }
        // In-process watches do not disconnect; this one lasts until the abort.
        await new Promise<void>((resolve) => {
          if (signal.aborted) resolve();
          else signal.addEventListener("abort", () => resolve(), { once: true });
        });
        unwatch();
      }
    },
  };
}
