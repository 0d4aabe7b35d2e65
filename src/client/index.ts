/** The control plane's API client, for the CLI, the node agent and the proxy. */
export { PithClient, type PithClientOptions } from "./pith-client.ts";
export { ApiError, isApiError, isApiUnavailable, type ApiErrorDetail, type ApiErrorBody } from "./api-error.ts";
export { compareRevisions, type WatchOptions, type WatchHandler } from "./watch.ts";
export type { ClientWatchEvent, InputOf, ResourceByKind, ResourceList, ResourceOf, SpecOf, StatusOf } from "./types.ts";
