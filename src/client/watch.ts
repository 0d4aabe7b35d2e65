import type { Resource } from "../model/resource.ts";
import { ApiError, apiErrorFromNetwork } from "./api-error.ts";
import { ndjsonLines } from "./body-stream.ts";
import type { ClientWatchEvent } from "./types.ts";

export interface WatchOptions<R> {
  /**
   * Deliver changes after this revision (typically a list's metadata.resourceVersion). Without
   * it the watch first lists to learn the current revision, and delivers changes after that.
   */
  resourceVersion?: string;
  /** Stops the watch: `watch()` then resolves. */
  signal: AbortSignal;
  /** Only objects with all these labels (filtered here: the API does not take labelSelector on watches). */
  labels?: Record<string, string>;
  /**
   * Called when the server answers 410 Gone (the revision to resume from was compacted away, e.g.
   * after a long disconnect): the client lists the kind again and hands over the complete current
   * set of objects and the revision they are at, then keeps watching from that revision. Changes
   * between the last delivered event and this list were not delivered as events: treat `items` as
   * the truth (e.g. rebuild a cache from it). Without onRelist, a 410 rejects the watch.
   */
  onRelist?: (items: R[], resourceVersion: string) => void | Promise<void>;
  /** Told about each lost connection before the client reconnects after `retryInMs`. */
  onDisconnect?: (error: Error, retryInMs: number) => void;
  /** Reconnect back-off: starts at `initialMs`, doubles per failed attempt up to `maxMs`. */
  backoff?: { initialMs: number; maxMs: number };
  /** Reconnect if nothing (not even a BOOKMARK) arrives for this long; default 90 s. */
  idleTimeoutMs?: number;
}

export type WatchHandler<R> = (event: ClientWatchEvent<R>) => void | Promise<void>;

/** How the watch loop talks to the server; PithClient provides it. */
export interface WatchTransport<R> {
  server: string;
  /** Opens `?watch=true&resourceVersion=rv`; rejects with ApiError on a non-2xx status. */
  open(resourceVersion: string, signal: AbortSignal): Promise<ReadableStream<Uint8Array>>;
  list(signal: AbortSignal): Promise<{ items: R[]; resourceVersion: string }>;
}

interface WatchLine {
  type?: string;
  object?: { metadata?: { resourceVersion?: string; labels?: Record<string, string> } } & Record<string, unknown>;
  resourceVersion?: string;
}

/** An error thrown by the caller's callback: it ends the watch instead of causing a reconnect. */
class CallbackError {
  constructor(readonly error: unknown) {}
}

const callback = async (run: () => void | Promise<void>): Promise<void> => {
  try {
    await run();
  } catch (e) {
    throw new CallbackError(e);
  }
};

/**
 * Streams changes and keeps streaming across disconnects: it remembers the revision of the last
 * event or BOOKMARK it saw and reconnects from there, so every change is delivered once, in order.
 * Resolves when `signal` aborts; rejects on a callback's error or an error retrying cannot fix
 * (bad request, token refused, unknown kind; 410 without onRelist).
 */
export async function runWatch<R extends Resource>(transport: WatchTransport<R>, options: WatchOptions<R>, onEvent: WatchHandler<R>): Promise<void> {
  const { signal } = options;
  const initialMs = options.backoff?.initialMs ?? 200;
  const maxMs = options.backoff?.maxMs ?? 5000;
  let delay = initialMs;
  let revision = options.resourceVersion;
  let relist = false;

  while (!signal.aborted) {
    try {
      if (revision === undefined || relist) {
        const list = await transport.list(signal);
        if (relist) await callback(() => options.onRelist?.(list.items.filter((o) => matches(o, options.labels)), list.resourceVersion));
        revision = list.resourceVersion;
        relist = false;
      }
      const from: string = revision;
      await streamOnce(transport, options, from, (rv) => {
        if (rv !== undefined) revision = rv;
        delay = initialMs;
      }, onEvent);
      throw new Error("the server ended the watch");
    } catch (e) {
      if (e instanceof CallbackError) throw e.error;
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status === 410) {
        if (!options.onRelist) throw e;
        relist = true;
        continue;
      }
      if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 408 && e.status !== 429) throw e;
      const error = e instanceof ApiError ? e : apiErrorFromNetwork(e, transport.server);
      options.onDisconnect?.(error, delay);
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, maxMs);
  }
}

/** One connection: delivers events after `from` until the stream ends or fails. */
async function streamOnce<R extends Resource>(
  transport: WatchTransport<R>,
  options: WatchOptions<R>,
  from: string,
  /** Called for every line (the connection works), with its revision once it is delivered. */
  advance: (resourceVersion: string | undefined) => void,
  onEvent: WatchHandler<R>,
): Promise<void> {
  const connection = new AbortController();
  const stop = () => connection.abort(options.signal.reason);
  options.signal.addEventListener("abort", stop, { once: true });
  if (options.signal.aborted) stop();
  const idleMs = options.idleTimeoutMs ?? 90_000;
  let idle = setTimeout(() => connection.abort(new Error(`no data for ${idleMs} ms`)), idleMs);
  let last = from;
  try {
    const body = await transport.open(from, connection.signal);
    for await (const text of ndjsonLines(body)) {
      clearTimeout(idle);
      idle = setTimeout(() => connection.abort(new Error(`no data for ${idleMs} ms`)), idleMs);
      const line = JSON.parse(text) as WatchLine;
      if (line.type === "ERROR") throw errorFromLine(line);
      const rv = line.resourceVersion ?? line.object?.metadata?.resourceVersion;
      advance(undefined);
      if (rv === undefined || compareRevisions(rv, last) <= 0) continue; // delivered before a reconnect
      if (options.signal.aborted) return; // stopped: deliver nothing more, even what is buffered
      if (line.type === "ADDED" || line.type === "MODIFIED" || line.type === "DELETED") {
        const object = line.object as unknown as R;
        if (matches(object, options.labels)) await callback(() => onEvent({ type: line.type as ClientWatchEvent<R>["type"], object }));
      }
      last = rv;
      advance(rv);
    }
  } finally {
    clearTimeout(idle);
    options.signal.removeEventListener("abort", stop);
    connection.abort();
  }
}

/** A k8s-style `{"type":"ERROR","object":{"error":{...}}}` line, e.g. Gone once the watch started. */
function errorFromLine(line: WatchLine): ApiError {
  const body = line.object as { error?: { code?: string; message?: string }; code?: number | string; message?: string } | undefined;
  const code = String(body?.error?.code ?? body?.code ?? "Error");
  const message = body?.error?.message ?? body?.message ?? "the server reported an error in the watch";
  return new ApiError(code === "Gone" || code === "410" ? 410 : 500, code, message);
}

/** Orders two resourceVersions: decimal revision strings, compared as numbers. */
export function compareRevisions(a: string, b: string): number {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function matches(object: { metadata?: { labels?: Record<string, string> } }, labels: Record<string, string> | undefined): boolean {
  if (!labels) return true;
  return Object.entries(labels).every(([k, v]) => object.metadata?.labels?.[k] === v);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
