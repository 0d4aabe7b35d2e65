/**
 * What the proxy routes to: a service and its ready machines. The RouteTable builds these from
 * the control plane; the proxy server only reads them (and counts requests on the backends).
 */

/** One ready machine of a service. The same machine keeps the same object while its URL stays. */
export interface Backend {
  readonly machine: string;
  readonly url: URL;
  /** The registered address of the machine's node, which `url` may use instead of loopback (backend-address.ts). */
  readonly nodeAddress?: string;
  /** Requests (and upgraded connections) the proxy has outstanding on this machine; the proxy updates it. */
  inFlight: number;
}

export interface Route {
  readonly service: string;
  /** The machines that may take requests now (ready and meant to keep running); replaced, never mutated. */
  readonly backends: readonly Backend[];
  /** spec.min === 0: the service scales to zero, so an empty route means "start one on demand". */
  readonly minZero: boolean;
}

/** Called once per service whose route changed; `route` is undefined when the service is gone. */
export type RouteListener = (service: string, route: Route | undefined) => void;

/** What the proxy server needs of a route table. */
export interface RouteSource {
  lookup(host: string, path: string): Route | undefined;
  /** Subscribes to route changes (pushed, never polled); returns the unsubscribe function. */
  onChange(listener: RouteListener): () => void;
}

const LOCALHOST_SUFFIX = ".localhost";

/**
 * A Host header or spec.hosts entry as a lookup key: lower case, without the port or a trailing
 * dot. `[::1]:8080` keeps its brackets. Returns the input itself when it is already a key.
 */
export function normaliseHost(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf("]");
    if (close > 0) end = close + 1;
  } else {
    const colon = host.lastIndexOf(":");
    if (colon >= 0) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 46 /* . */) end--;
  const key = end === host.length ? host : host.slice(0, end);
  return key.toLowerCase();
}

/** The service a `<service>.localhost` host names, or undefined. */
export function localhostService(key: string): string | undefined {
  return key.length > LOCALHOST_SUFFIX.length && key.endsWith(LOCALHOST_SUFFIX) ? key.slice(0, -LOCALHOST_SUFFIX.length) : undefined;
}
