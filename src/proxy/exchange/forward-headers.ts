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
  /** The headers for the upstream request. */
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

/** The header names a Connection header lists beyond the usual keep-alive/close/upgrade, or undefined. */
function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  let tokens: Set<string> | undefined;
  for (const token of value.split(",")) {
    const name = token.trim().toLowerCase();
    if (name === "" || name === "close" || name === "keep-alive" || name === "upgrade") continue;
    (tokens ??= new Set()).add(name);
  }
  return tokens;
}

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * Reads a client request's headers into what goes upstream. For an upgrade, Upgrade is kept and
 * Connection is `Upgrade`.
 */
export function forwardRequest(req: Pick<ClientRequest, "rawHeaders" | "remoteAddress">, proto: string, upgrade: boolean): ForwardRequest {
  const raw = req.rawHeaders;
  const headers: string[] = [];
  let host: string | undefined;
  let requestId: string | undefined;
  let forwardedFor: string | undefined;
  let connection: string | undefined;
  let upgradeTo: string | undefined;
  let hasBody = false;
  let contentLength = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    switch (lower) {
      case "host":
        host ??= value;
        break;
      case "content-length":
        contentLength = true;
        if (value !== "0") hasBody = true;
        break;
      case "transfer-encoding":
        hasBody = true;
        continue;
      case "x-forwarded-for":
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        continue;
      case "x-request-id":
        if (requestId === undefined && REQUEST_ID.test(value)) requestId = value;
        continue;
      case "x-forwarded-proto":
      case "x-forwarded-host":
        continue;
      case "connection":
        connection = connection === undefined ? value : `${connection}, ${value}`;
        continue;
      case "upgrade":
        upgradeTo = value;
        continue;
    }
    if (isHopByHop(lower)) continue;
    headers.push(name, value);
  }
  const extra = connectionTokens(connection);
  const kept = extra ? withoutNames(headers, extra) : headers;
  const remote = req.remoteAddress ?? "unknown";
  const id = requestId ?? newRequestId();
  kept.push("X-Forwarded-For", forwardedFor === undefined ? remote : `${forwardedFor}, ${remote}`, "X-Forwarded-Proto", proto);
  if (host !== undefined) kept.push("X-Forwarded-Host", host);
  kept.push("X-Request-Id", id);
  if (upgrade && upgradeTo !== undefined) kept.push("Connection", "Upgrade", "Upgrade", upgradeTo);
  return { host, requestId: id, hasBody, chunked: hasBody && !contentLength, headers: kept };
}

/**
 * A request head for a machine: request line, the forwarded headers, Transfer-Encoding for a
 * chunked body, the blank line. Written as is: the server's parser let no CR, LF or NUL into
 * the method, the headers or the path.
 */
export function requestHead(method: string, path: string, headers: readonly string[], chunked = false): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  if (chunked) head += "Transfer-Encoding: chunked\r\n";
  return `${head}\r\n`;
}

/** An upstream response's headers for the client: hop-by-hop removed, X-Request-Id set. */
export function responseHeaders(raw: readonly string[], requestId: string): string[] {
  const headers: string[] = [];
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    if (lower === "connection") connection = connection === undefined ? value : `${connection}, ${value}`;
    if (lower === "x-request-id" || isHopByHop(lower)) continue;
    headers.push(name, value);
  }
  const extra = connectionTokens(connection);
  const kept = extra ? withoutNames(headers, extra) : headers;
  kept.push("X-Request-Id", requestId);
  return kept;
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
