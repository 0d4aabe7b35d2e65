import { hostname } from "node:os";
import type { Leadership } from "../controller/leadership.ts";
import { SoleLeadership } from "../controller/sole-leadership.ts";
import { EtcdLeadership } from "../store/etcd/etcd-leadership.ts";
import { EtcdStore, type EtcdStoreOptions } from "../store/etcd/etcd-store.ts";
import { SqliteStore } from "../store/sqlite/sqlite-store.ts";
import type { Store } from "../store/store.ts";
import type { TokenRegistry } from "../store/token-registry.ts";

/** Where a control plane keeps its state: `pith server --store`. */
export type StoreConfig =
  | { kind: "sqlite"; path: string }
  | ({ kind: "etcd"; leaderTtlSeconds?: number } & EtcdStoreOptions);

export interface StoreBackend {
  store: Store;
  tokens: TokenRegistry;
  /** For the log: where the state is. */
  description: string;
  /** Who runs the controllers among the control planes on this store. */
  leadership(identity: string, log: (message: string) => void): Leadership;
}

/**
 * SQLite: one process owns the file and always leads. etcd: any number of control planes share
 * the cluster, all serve the API, and one at a time (elected) runs the controllers.
 */
export async function openStoreBackend(config: StoreConfig): Promise<StoreBackend> {
  if (config.kind === "sqlite") {
    const store = SqliteStore.open(config.path);
    return { store, tokens: store.tokens, description: config.path, leadership: () => new SoleLeadership(store) };
  }
  const store = await EtcdStore.open(config);
  return {
    store,
    tokens: store.tokens,
    description: `etcd ${config.endpoints.join(",")}${config.tls ? " (TLS)" : ""} under ${store.keys.prefix}`,
    leadership: (identity, log) =>
      new EtcdLeadership(store, { identity: `${identity} on ${hostname()} pid ${process.pid}`, log, ...(config.leaderTtlSeconds === undefined ? {} : { ttlSeconds: config.leaderTtlSeconds }) }),
  };
}
