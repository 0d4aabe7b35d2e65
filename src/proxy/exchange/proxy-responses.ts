import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { ClientResponse } from "./client-side.ts";

/**
 * The proxy's own answers (no route, no machine, machine unreachable), in the control plane's
 * error shape: `{"error":{"code","message"}}`.
 */
export interface ProxyErrorResponse {
  status: number;
  code: string;
  message: string;
  /** Seconds, for 503s: when trying again makes sense. */
  retryAfter?: number;
}

const body = (error: ProxyErrorResponse): string => JSON.stringify({ error: { code: error.code, message: error.message } });

export function sendError(res: ClientResponse, error: ProxyErrorResponse, requestId: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = body(error);
  const headers: string[] = ["Content-Type", "application/json", "Content-Length", String(Buffer.byteLength(text)), "X-Request-Id", requestId];
  if (error.retryAfter !== undefined) headers.push("Retry-After", String(error.retryAfter));
  res.writeHead(error.status, undefined, headers);
  res.end(text);
}

/** How long a socket answered with an error may wait for the client's FIN before it is cut. */
const LINGER_MS = 5_000;

/**
 * The same answer written on a raw socket, for an upgrade request that cannot be tunnelled or a
 * request the server refused; then the socket is ended. What the client still sends is read and
 * dropped until its FIN (so the answer is not lost to a reset), for at most LINGER_MS.
 */
export function writeErrorToSocket(socket: Duplex, error: ProxyErrorResponse, requestId: string): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const text = body(error);
  const retryAfter = error.retryAfter !== undefined ? `Retry-After: ${error.retryAfter}\r\n` : "";
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ""}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
      `X-Request-Id: ${requestId}\r\n${retryAfter}Connection: close\r\n\r\n${text}`,
  );
  socket.resume();
  const linger = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once("close", () => clearTimeout(linger));
}
