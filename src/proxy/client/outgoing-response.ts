import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";

/** What a response needs from its connection. */
export interface ResponseWriter {
  readonly socket: Socket;
  /** Whether the connection may carry another request after this response (asked once, at writeHead). */
  keepAliveAfterResponse(): boolean;
  /** The Keep-Alive hint sent with kept-alive responses (`timeout=N`). */
  readonly keepAliveHint: string;
  /** A write did not fit in the socket's buffer: the client has to read before the time limit. */
  writeBlocked(): void;
  /** The response was handed to the socket whole. */
  responseEnded(keepAlive: boolean): void;
}

const NO_HEADERS: readonly string[] = [];
const isContentLength = (name: string): boolean => name.length === 14 && name.toLowerCase() === "content-length";
const isDate = (name: string): boolean => name.length === 4 && name.toLowerCase() === "date";

/** Bodies up to this size go out in one buffer with their framing (one copy); larger ones in one corked writev. */
const COPY_LIMIT = 16 * 1024;

let dateText = "";
let dateSecond = -1;
/** The Date field's value (RFC 9110 6.6.1: a proxy adds one to a response that has none), made once a second. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/**
 * One response of Pith's HTTP server, framed for the client: Content-Length as given, else chunked
 * (HTTP/1.1) or until the close (HTTP/1.0); no body for HEAD, 1xx, 204 and 304. The head is held
 * until the first body bytes or the end, so a small response is one socket write. Connection:
 * close goes out when the connection ends after it; Connection: keep-alive to an HTTP/1.0 client
 * that asked for it. A Date is added when the response has none, as node's server did.
 */
export class OutgoingResponse {
  statusCode = 200;
  headersSent = false;
  writableFinished = false;
  readonly #writer: ResponseWriter;
  readonly #method: string;
  readonly #minorVersion: number;
  /** The serialised head, until it goes out with the first body bytes. */
  #head: string | undefined;
  #chunked = false;
  #bodiless = false;
  #keepAlive = false;
  /** The first 'close' listener (the exchange's), then any others: no array for the usual one. */
  #closeListener: (() => void) | undefined;
  #closeListeners: (() => void)[] | undefined;
  #closed = false;

  constructor(writer: ResponseWriter, method: string, minorVersion: number) {
    this.#writer = writer;
    this.#method = method;
    this.#minorVersion = minorVersion;
  }

  writeHead(status: number, reason: string | undefined, headers: readonly string[]): this {
    return this.#writeHead(status, reason, "", NO_HEADERS, headers);
  }

  /** writeHead with field lines checked by a parser (`fieldHeaders` the same as [name, value, ...]) sent verbatim before `headers`. */
  writeHeadWithFields(status: number, reason: string | undefined, fields: string, fieldHeaders: readonly string[], headers: readonly string[]): this {
    return this.#writeHead(status, reason, fields, fieldHeaders, headers);
  }

  #writeHead(status: number, reason: string | undefined, fields: string, fieldHeaders: readonly string[], headers: readonly string[]): this {
    if (this.headersSent) throw new Error("writeHead() after the head was sent");
    if (!Number.isInteger(status) || status < 200 || status > 999) throw new RangeError(`invalid response status ${status}`);
    let head = fields === "" ? `HTTP/1.1 ${status} ${reason ?? STATUS_CODES[status] ?? ""}\r\n` : `HTTP/1.1 ${status} ${reason ?? STATUS_CODES[status] ?? ""}\r\n${fields}\r\n`;
    let hasLength = false;
    let hasDate = false;
    for (let i = 0; i < fieldHeaders.length; i += 2) {
      const name = fieldHeaders[i] as string;
      if (isContentLength(name)) hasLength = true;
      else if (isDate(name)) hasDate = true;
    }
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      if (isContentLength(name)) hasLength = true;
      else if (isDate(name)) hasDate = true;
      head += `${name}: ${headers[i + 1]}\r\n`;
    }
    if (!hasDate) head += `Date: ${httpDate()}\r\n`;
    let keepAlive = this.#writer.keepAliveAfterResponse();
    this.#bodiless = this.#method === "HEAD" || status === 204 || status === 304;
    if (!this.#bodiless && !hasLength) {
      if (this.#minorVersion === 1) {
        this.#chunked = true;
        head += "Transfer-Encoding: chunked\r\n";
      } else keepAlive = false; // HTTP/1.0 has no chunked: the close ends the body
    }
    if (!keepAlive) head += "Connection: close\r\n";
    else head += this.#minorVersion === 0 ? `Connection: keep-alive\r\nKeep-Alive: ${this.#writer.keepAliveHint}\r\n` : `Keep-Alive: ${this.#writer.keepAliveHint}\r\n`;
    this.#keepAlive = keepAlive;
    this.statusCode = status;
    this.headersSent = true;
    this.#head = `${head}\r\n`;
    return this;
  }

  write(chunk: Buffer): boolean {
    if (this.writableFinished || this.#closed) return false;
    if (!this.headersSent) this.writeHead(200, undefined, []);
    if (this.#bodiless || chunk.length === 0) return true;
    const head = this.#takeHead();
    if (!this.#chunked) return this.#send(head, chunk, "");
    return this.#send(`${head}${chunk.length.toString(16)}\r\n`, chunk, "\r\n");
  }

  end(chunk?: Buffer | string): this {
    if (this.writableFinished || this.#closed) return this;
    if (!this.headersSent) this.writeHead(200, undefined, []);
    const body = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    const head = this.#takeHead();
    if (this.#bodiless || !body || body.length === 0) this.#send(head, undefined, this.#chunked && !this.#bodiless ? "0\r\n\r\n" : "");
    else if (this.#chunked) this.#send(`${head}${body.length.toString(16)}\r\n`, body, "\r\n0\r\n\r\n");
    else this.#send(head, body, "");
    this.writableFinished = true;
    this.#writer.responseEnded(this.#keepAlive);
    this.emitClose();
    return this;
  }

  destroy(): this {
    this.#writer.socket.destroy();
    return this;
  }

  once(event: "drain" | "close", listener: () => void): this {
    if (event === "drain") this.#writer.socket.once("drain", listener);
    else if (this.#closed) process.nextTick(listener);
    else if (!this.#closeListener) this.#closeListener = listener;
    else (this.#closeListeners ??= []).push(listener);
    return this;
  }

  /** The response ended, or its connection closed first: 'close', once. */
  emitClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    const first = this.#closeListener;
    const listeners = this.#closeListeners;
    this.#closeListener = undefined;
    this.#closeListeners = undefined;
    first?.();
    if (listeners) for (const listener of listeners) listener();
  }

  #takeHead(): string {
    const head = this.#head ?? "";
    this.#head = undefined;
    return head;
  }

  /** prefix (latin1), body, suffix (latin1) as one write; false when the socket's buffer is full. */
  #send(prefix: string, body: Buffer | undefined, suffix: string): boolean {
    const socket = this.#writer.socket;
    if (socket.destroyed) return false;
    const bodyLength = body ? body.length : 0;
    let ok: boolean;
    if (bodyLength <= COPY_LIMIT) {
      const buffer = Buffer.allocUnsafe(prefix.length + bodyLength + suffix.length);
      buffer.write(prefix, 0, "latin1");
      if (body) body.copy(buffer, prefix.length);
      if (suffix.length > 0) buffer.write(suffix, prefix.length + bodyLength, "latin1");
      ok = socket.write(buffer);
    } else {
      // Every write's answer counts: 'drain' comes only after one of them said false.
      socket.cork();
      ok = prefix.length > 0 ? socket.write(prefix, "latin1") : true;
      ok = socket.write(body as Buffer) && ok;
      if (suffix.length > 0) ok = socket.write(suffix, "latin1") && ok;
      socket.uncork();
    }
    if (!ok) this.#writer.writeBlocked();
    return ok;
  }
}
