import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { ErrorBody } from "./api-error.ts";

const answered = new WeakSet<Socket>();

/** How long a refused connection may go on sending before it is cut: long enough for its client to read the answer. */
const LINGER_MS = 2000;

/**
 * The answer to a request Node's HTTP parser refused before any route saw it: a request line and
 * headers over Node's 16 KiB (431), a request that took too long to arrive (408), or bytes that
 * are not HTTP (400). In the API's error shape, like every other error.
 *
 * The answer is written, then what the client still sends is read and dropped until it closes its
 * side (a client reads an answer marked `connection: close` and closes) or for a moment at most:
 * closed at once, unread input makes the kernel send a reset, and a client still writing its
 * oversized request would never see the answer.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  // Node's parser stays failed: every later chunk the client sends is reported again. Answered once.
  if (answered.has(socket)) return;
  // A keep-alive connection has answered earlier requests; only one whose answer is under way
  // (its headers sent) cannot take another. Node's own handler asks the same of _httpMessage.
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (!socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  answered.add(socket);
  const [status, body] = describe(error);
  const json = JSON.stringify(body);
  socket.write(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\n\r\n${json}`,
  );
  socket.resume();
  socket.once("end", () => socket.end());
  const cut = setTimeout(() => socket.destroy(), LINGER_MS);
  cut.unref();
  socket.once("close", () => clearTimeout(cut));
}

function describe(error: { code?: string }): [number, ErrorBody] {
  switch (error.code) {
    case "HPE_HEADER_OVERFLOW":
      return [431, { error: { code: "TooLarge", message: "the request line and headers are larger than the API accepts (16 KiB)", hint: "names and paths are short; large data belongs in a request body" } }];
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return [408, { error: { code: "Invalid", message: "the request did not arrive in time" } }];
    default:
      return [400, { error: { code: "Invalid", message: "the request is not well-formed HTTP/1.1" } }];
  }
}
