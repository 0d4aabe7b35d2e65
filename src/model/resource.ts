/**
 * Every object the control plane keeps has the same shape: apiVersion / kind / metadata / spec
 * / status. `spec` is what a user (or a controller) wants; `status` is what an agent or controller
 * observed. Only the store assigns uid, resourceVersion, generation and timestamps.
 */
export const API_VERSION = "pith.dev/v1";

export const KINDS = ["Service", "Machine", "Node", "Image", "Event", "Secret", "Volume"] as const;
export type Kind = (typeof KINDS)[number];

/** URL path segment for each kind: /api/v1/<plural>. */
export const PLURALS: Record<Kind, string> = {
  Service: "services",
  Machine: "machines",
  Node: "nodes",
  Image: "images",
  Event: "events",
  Secret: "secrets",
  Volume: "volumes",
};

export interface ObjectMeta {
  name: string;
  uid: string;
  /** The store's revision at this object's last write: a decimal string, increasing across all kinds. */
  resourceVersion: string;
  /** Incremented by the store each time `spec` changes (not on status-only writes). */
  generation: number;
  labels: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

export interface Resource<K extends Kind = Kind, Spec = unknown, Status = unknown> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: ObjectMeta;
  spec: Spec;
  status: Status;
}

/** What a client sends: metadata without the store-assigned fields; status optional. */
export interface ResourceInput<K extends Kind = Kind, Spec = unknown, Status = unknown> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: { name: string; labels?: Record<string, string>; resourceVersion?: string };
  spec: Spec;
  status?: Status;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface WatchEvent<R extends Resource = Resource> {
  type: WatchEventType;
  object: R;
}
