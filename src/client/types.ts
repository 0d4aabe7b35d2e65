import type { Image, Machine, PithEvent, PithNode, Secret, Service, Volume } from "../model/kinds.ts";
import type { Kind, ResourceInput, WatchEventType } from "../model/resource.ts";

/** The typed object for each kind, so `client.get("Service", "web")` is a Service. */
export interface ResourceByKind {
  Service: Service;
  Machine: Machine;
  Node: PithNode;
  Image: Image;
  Event: PithEvent;
  Secret: Secret;
  Volume: Volume;
}

export type ResourceOf<K extends Kind> = ResourceByKind[K];
export type SpecOf<K extends Kind> = ResourceOf<K>["spec"];
export type StatusOf<K extends Kind> = ResourceOf<K>["status"];

/** What create/update send for a kind: metadata without the store-assigned fields. */
export type InputOf<K extends Kind> = ResourceInput<K, SpecOf<K>, StatusOf<K>>;

/** `GET /api/v1/<plural>`: the objects and the store revision the list was read at. */
export interface ResourceList<R> {
  apiVersion: string;
  kind: string;
  metadata: { resourceVersion: string };
  items: R[];
}

/** One change delivered by `PithClient.watch` (BOOKMARKs are consumed by the client). */
export interface ClientWatchEvent<R> {
  type: WatchEventType;
  object: R;
}
