/**
 * The API's bounds on what one client can make the control plane hold (README: Limits). Each is
 * an answer a client can act on (413, 429, 400), never the process running out of memory.
 */

/** Request bodies: far above any object Pith writes, far below what would hurt to parse. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Streams (watches, console follows) one client may hold open at once. */
export const MAX_STREAMS_PER_CLIENT = 32;

/** Time to receive a whole request (headers and body); streaming responses are not bounded by it. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Time to receive a request's headers. */
export const HEADERS_TIMEOUT_MS = 10_000;
