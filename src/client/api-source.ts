import type { Kind } from "../model/resource.ts";
import type { InformerSink, InformerSource } from "./informer.ts";
import type { PithClient } from "./pith-client.ts";
import type { ResourceOf } from "./types.ts";
import type { WatchOptions } from "./watch.ts";

export type ApiSourceOptions<K extends Kind> = Pick<WatchOptions<ResourceOf<K>>, "onDisconnect" | "backoff" | "idleTimeoutMs">;

/**
 * An informer's objects from the API over HTTP (agents, proxies): a list, then the client's
 * watch from the list's revision, which already resumes across disconnects and relists on 410.
 */
export function apiSource<K extends Kind>(client: PithClient, kind: K, options: ApiSourceOptions<K> = {}): InformerSource<ResourceOf<K>> {
  return {
    description: `${kind} from ${client.server}`,
    async run(sink: InformerSink<ResourceOf<K>>, signal: AbortSignal): Promise<void> {
      const list = await client.list(kind, { signal });
      sink.replace(list.items, list.metadata.resourceVersion);
      await client.watch(
        kind,
        { ...options, resourceVersion: list.metadata.resourceVersion, signal, onRelist: (items, rv) => sink.replace(items, rv) },
        (event) => sink.apply(event.type, event.object),
      );
    },
  };
}
