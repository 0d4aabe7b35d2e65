import { randomFillSync } from "node:crypto";
import type { ClientRequest } from "./client-side.ts";

/**
 * Request and response headers as they cross the proxy, as flat [name, value, ...] arrays (what
 * http.request and writeHead take), built in one pass over rawHeaders: reading `req.headers` would
 * build another object per request. Hop-by-hop headers stop here (the server frames the body itself);
 * X-Forwarded-For is appended to, X-Forwarded-Proto/-Host are set, X-Request-Id kept or made.
 */

export interface ForwardRequest {
  /** The Host header as sent (undefined without one). */
  host: string | undefined;
  requestId: string;
  /** Content-Length other than 0, or Transfer-Encoding: the request streams a body. */
  hasBody: boolean;
  /** A body without a Content-Length: it goes upstream chunked (the server decoded the client's framing). */
  chunked: boolean;
  /**
   * The client's field lines as received (see ClientRequest.fields), when none of them needs an
   * edit: they go upstream as they are, before `headers`. Undefined: `headers` are all of them.
   */
  fields: string | undefined;
  /** The headers for the upstream request (after `fields`, when set: then only the proxy's own). */
  headers: string[];
}

/** Headers of one hop only (RFC 9110 7.6.1), plus Expect: the proxy's own server already answered it. */
function isHopByHop(lower: string): boolean {
  switch (lower) {
    case "connection":
    case "keep-alive":
    case "te":
    case "trailer":
    case "transfer-encoding":
    case "upgrade":
    case "expect":
      return true;
    default:
      return lower.startsWith("proxy-");
  }
}

/** Every name the proxy reads, drops or sets, lower-cased: any other field crosses as it is. */
const NOTED = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-request-id",
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "upgrade",
  "expect",
]);
/** The proxy's own headers, which a client's underscore spelling must not stand in for. */
const SET_BY_PROXY = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"]);
/** By name length (every noted name is shorter than 32): 1 where some noted name has that length. */
const NOTED_LENGTHS = new Uint8Array(32);
for (const name of NOTED) NOTED_LENGTHS[name.length] = 1;

/**
 * `name` lower-cased if the proxy reads, drops or sets that field, else undefined. By length
 * first: most fields are none of these, and lower-casing every name costs an allocation each.
 */
function notedName(name: string): string | undefined {
  if (NOTED_LENGTHS[name.length] === 1) {
    const lower = name.toLowerCase();
    if (NOTED.has(lower)) return lower;
    // X_Forwarded_For and its kind: CGI, WSGI and PHP apps read them as the proxy's own headers
    // (both become HTTP_X_FORWARDED_FOR), so they are treated as those, never passed through.
    if (lower.includes("_")) {
      const dashed = lower.replaceAll("_", "-");
      if (SET_BY_PROXY.has(dashed)) return dashed;
    }
  }
  // proxy-*: hop-by-hop, whatever follows the dash
  if (name.length >= 6 && name.charCodeAt(5) === 45 /* - */ && (name.charCodeAt(0) | 32) === 112 /* p */) {
    const lower = name.toLowerCase();
    if (lower.startsWith("proxy-")) return lower;
  }
  return undefined;
}

/**
 * Fields a Connection header may never remove: the body's framing, which the proxy parsed and the
 * machine must see the same (RFC 9110 7.6.1; `Connection: content-length` would otherwise leave the
 * body unframed, read by the machine as a second request), and Host, which the proxy routed by.
 */
const NOT_HOP_BY_HOP = new Set(["content-length", "transfer-encoding", "host"]);

/** The header names a Connection header lists beyond the usual keep-alive/close/upgrade, or undefined. */
function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  let tokens: Set<string> | undefined;
  for (const token of value.split(",")) {
    const name = token.trim().toLowerCase();
    if (name === "" || name === "close" || name === "keep-alive" || name === "upgrade" || NOT_HOP_BY_HOP.has(name)) continue;
    (tokens ??= new Set()).add(name);
  }
  return tokens;
}

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * Reads a client request's headers into what goes upstream. For an upgrade, Upgrade is kept and
 * Connection is `Upgrade`. When the request carries its field lines as received (`fields`) and
 * none of them needs an edit (only Host and Content-Length among the fields the proxy notes),
 * they are forwarded verbatim and `headers` holds only the proxy's additions: no header array is
 * built and none re-serialised.
 */
export function forwardRequest(req: Pick<ClientRequest, "rawHeaders" | "remoteAddress" | "fields">, proto: string, upgrade: boolean): ForwardRequest {
  const raw = req.rawHeaders;
  let headers: string[] = [];
  let host: string | undefined;
  let requestId: string | undefined;
  let forwardedFor: string | undefined;
  let connection: string | undefined;
  let upgradeTo: string | undefined;
  let hasBody = false;
  let contentLength = false;
  let verbatim = req.fields !== undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = notedName(name);
    switch (lower) {
      case undefined:
        break;
      case "host":
        host ??= value;
        break;
      case "content-length":
        contentLength = true;
        if (value !== "0") hasBody = true;
        break;
      case "transfer-encoding":
        hasBody = true;
        verbatim = false;
        continue;
      case "x-forwarded-for":
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        verbatim = false;
        continue;
      case "x-request-id":
        if (requestId === undefined && REQUEST_ID.test(value)) requestId = value;
        verbatim = false;
        continue;
      case "connection":
        connection = connection === undefined ? value : `${connection}, ${value}`;
        verbatim = false;
        continue;
      case "upgrade":
        upgradeTo = value;
        verbatim = false;
        continue;
      default: // x-forwarded-proto, x-forwarded-host: set by the proxy; the rest are hop-by-hop
        verbatim = false;
        continue;
    }
    headers.push(name, value);
  }
  const extra = connectionTokens(connection);
  if (verbatim) headers = [];
  else if (extra) headers = withoutNames(headers, extra);
  const remote = req.remoteAddress ?? "unknown";
  const id = requestId ?? newRequestId();
  headers.push("X-Forwarded-For", forwardedFor === undefined ? remote : `${forwardedFor}, ${remote}`, "X-Forwarded-Proto", proto);
  if (host !== undefined) headers.push("X-Forwarded-Host", host);
  headers.push("X-Request-Id", id);
  if (upgrade && upgradeTo !== undefined) headers.push("Connection", "Upgrade", "Upgrade", upgradeTo);
  return { host, requestId: id, hasBody, chunked: hasBody && !contentLength, fields: verbatim ? req.fields : undefined, headers };
}

/**
 * A request head for a machine: request line, the forwarded fields (verbatim, then the headers),
 * Transfer-Encoding for a chunked body, the blank line. Written as is: the server's parser let no
 * CR, LF or NUL into the method, the fields or the path.
 */
export function requestHead(method: string, path: string, forward: Pick<ForwardRequest, "fields" | "headers" | "chunked">): string {
  let head = forward.fields ? `${method} ${path} HTTP/1.1\r\n${forward.fields}\r\n` : `${method} ${path} HTTP/1.1\r\n`;
  const headers = forward.headers;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  if (forward.chunked) head += "Transfer-Encoding: chunked\r\n";
  return `${head}\r\n`;
}

/** An upstream response's header fields for the client (see responseHeaders). */
export interface ForwardResponse {
  /** The response's field lines as received, when none needs an edit: they go first, as they are. */
  fields: string | undefined;
  /** The headers after `fields` (only the proxy's own when `fields` is set). */
  headers: string[];
}

/**
 * An upstream response's headers for the client: hop-by-hop removed, X-Request-Id set. With the
 * response's field lines as received (`fields`, checked by the response parser) and no field to
 * drop or replace, those lines are forwarded verbatim and only X-Request-Id is added.
 */
export function responseHeaders(raw: readonly string[], requestId: string, fields?: string): ForwardResponse {
  if (fields !== undefined && !raw.some(isDroppedResponseField)) return { fields, headers: ["X-Request-Id", requestId] };
  const headers: string[] = [];
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = notedName(name);
    if (lower !== undefined) {
      if (lower === "connection") connection = connection === undefined ? value : `${connection}, ${value}`;
      if (lower === "x-request-id" || isHopByHop(lower)) continue;
    }
    headers.push(name, value);
  }
  const extra = connectionTokens(connection);
  const kept = extra ? withoutNames(headers, extra) : headers;
  kept.push("X-Request-Id", requestId);
  return { fields: undefined, headers: kept };
}

/** For raw.some over [name, value, ...]: a name (even index) the proxy does not pass on to the client as it is. */
function isDroppedResponseField(name: string, index: number): boolean {
  if (index % 2 === 1) return false;
  const lower = notedName(name);
  return lower !== undefined && (lower === "x-request-id" || isHopByHop(lower));
}

function withoutNames(headers: string[], names: Set<string>): string[] {
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (!names.has(name.toLowerCase())) kept.push(name, headers[i + 1] as string);
  }
  return kept;
}

/** Random ids from a pooled buffer: 72 bits, 12 url-safe characters, one randomFill per 512 ids. */
const ID_BYTES = 9;
const pool = Buffer.allocUnsafe(ID_BYTES * 512);
let poolOffset = pool.length;

export function newRequestId(): string {
  if (poolOffset === pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const id = pool.toString("base64url", poolOffset, poolOffset + ID_BYTES);
  poolOffset += ID_BYTES;
  return id;
}
