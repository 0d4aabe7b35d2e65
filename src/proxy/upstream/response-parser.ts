/**
 * A strict, incremental HTTP/1.1 response parser for the proxy's upstream connections (RFC 9112):
 * status line, header fields, and the body's framing (Content-Length, chunked, or until the
 * connection closes; none for HEAD, 1xx, 204 and 304). Interim 1xx responses are skipped.
 * Anything the grammar does not allow is an error rather than a guess: the proxy answers 502
 * instead of forwarding a response it may have framed differently from the client (the root of
 * response smuggling). Bodies are handed on as slices of the input, never copied.
 */

import { checkControl, MAX_HEAD_BYTES, scanFields } from "../http/field-lines.ts";
import { chunkSize, MAX_CHUNK_LINE } from "../http/chunk-size.ts";
import { readHeadBlock } from "../http/head-block.ts";
import { CR, CRLF, LF } from "../http/octets.ts";

/** The final (non-1xx) response's head. */
export interface ResponseHead {
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minorVersion: number;
  status: number;
  reason: string;
  /** [name, value, ...] as received (values without surrounding whitespace). */
  rawHeaders: string[];
  /** The field lines as received, checked: `name: value` separated by CRLF, without the final CRLF ("" without fields). */
  fields: string;
  /** After this response the connection may carry another request. */
  keepAlive: boolean;
  /** Keep-Alive: timeout=N, in ms, if the server sent one. */
  keepAliveTimeoutMs: number | undefined;
}

export interface ResponseEvents {
  onHead(head: ResponseHead): void;
  onBody(chunk: Buffer): void;
  /** The response is complete. */
  onEnd(): void;
}

export class ResponseParseError extends Error {
  readonly code = "EBADRESPONSE";
}

export { MAX_HEAD_BYTES };
/** A chunk-size line with its extensions. */

const enum State {
  /** No request outstanding: any byte is an error. */
  Idle,
  Head,
  Length,
  UntilClose,
  ChunkSize,
  ChunkData,
  /** The CRLF after a chunk's data; `#crlfSeen` says how much of it has arrived. */
  ChunkDataEnd,
  Trailers,
  /** The response is complete: any further byte is an error. */
  Done,
  /** After an error, or abort(): everything is ignored. */
  Dead,
}

const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const parseError = (message: string): Error => new ResponseParseError(message);
const DIGITS = /^\d{1,15}$/;

interface StatusLine {
  minorVersion: number;
  code: number;
  reason: string;
}

/**
 * The status line `text[0, end)` read character by character, as STATUS_LINE would match it
 * (HTTP/1.0 or 1.1, SP, a status of three digits from 100, then SP and a reason without controls,
 * or nothing); undefined when it does not match, for slowStatusLine to say why. No regex and no
 * match array: this runs once per response.
 */
export function scanStatusLine(text: string, end: number): StatusLine | undefined {
  if (end < 12 || !text.startsWith("HTTP/1.", 0) || text.charCodeAt(8) !== 32) return undefined;
  const minorVersion = text.charCodeAt(7) - 48;
  const d0 = text.charCodeAt(9) - 48;
  const d1 = text.charCodeAt(10) - 48;
  const d2 = text.charCodeAt(11) - 48;
  if ((minorVersion !== 0 && minorVersion !== 1) || d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return undefined;
  if (end === 12) return { minorVersion, code: d0 * 100 + d1 * 10 + d2, reason: "" };
  if (text.charCodeAt(12) !== 32) return undefined;
  for (let i = 13; i < end; i++) {
    const c = text.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127 || c > 255) return undefined;
  }
  return { minorVersion, code: d0 * 100 + d1 * 10 + d2, reason: text.slice(13, end) };
}

/** A status line scanStatusLine did not take: the error that says what is wrong with it (or, failing that, its parts). */
export function slowStatusLine(statusLine: string): StatusLine {
  checkControl(statusLine, 0, statusLine.length, "the status line", parseError);
  const status = STATUS_LINE.exec(statusLine);
  if (!status) throw new ResponseParseError(`malformed status line: ${JSON.stringify(statusLine.slice(0, 80))}`);
  return { minorVersion: Number(status[1]), code: Number(status[2]), reason: status[3] ?? "" };
}

export class ResponseParser {
  readonly #events: ResponseEvents;
  #state = State.Idle;
  #headRequest = false;
  /** Head (or trailer, or chunk-size line) bytes received so far while they span inputs. */
  #partial: Buffer | undefined;
  #remaining = 0;
  #crlfSeen = 0;
  #keepAlive = false;
  /** Some byte of the current response has arrived. */
  #started = false;
  /** Inside feed(): start() now would parse the rest of this input as the next response. */
  #feeding = false;

  constructor(events: ResponseEvents) {
    this.#events = events;
  }

  /** A request was sent: its response is what comes next. `method` decides whether it has a body (HEAD: none). */
  start(method: string): void {
    if (this.#feeding || (this.#state !== State.Idle && this.#state !== State.Done)) throw new Error(`ResponseParser.start() in state ${this.#state}`);
    this.#state = State.Head;
    this.#headRequest = method === "HEAD";
    this.#partial = undefined;
    this.#started = false;
    this.#keepAlive = false;
  }

  /** Some byte of the response to the last start() has arrived. */
  get started(): boolean {
    return this.#started;
  }

  /** The response to the last start() is complete. */
  get done(): boolean {
    return this.#state === State.Done;
  }

  /** The last response completed and allows another request on the connection. */
  get reusable(): boolean {
    return this.#state === State.Done && this.#keepAlive;
  }

  /** Stops parsing: later input is ignored (the connection is being closed). */
  abort(): void {
    this.#state = State.Dead;
    this.#partial = undefined;
  }

  /** Bytes from the connection. Events fire synchronously; throws ResponseParseError on malformed input. */
  feed(data: Buffer): void {
    this.#feeding = true;
    try {
      this.#feed(data);
    } catch (error) {
      this.abort();
      throw error;
    } finally {
      this.#feeding = false;
    }
  }

  /**
   * The connection was closed by the server. Completes a body delimited by the close; throws if
   * the response was incomplete (returns quietly if none was expected or it had not started).
   */
  end(): void {
    const state = this.#state;
    if (state === State.UntilClose) {
      this.#state = State.Done;
      this.#events.onEnd();
      return;
    }
    if (state === State.Idle || state === State.Done || state === State.Dead) return;
    this.abort();
    if (state === State.Head && !this.#started) return;
    throw new ResponseParseError("the connection closed before the response was complete");
  }

  #feed(data: Buffer): void {
    let at = 0;
    const n = data.length;
    if (n > 0 && this.#state === State.Head) this.#started = true;
    while (at < n) {
      switch (this.#state) {
        case State.Idle:
          throw new ResponseParseError("response data with no request outstanding");
        case State.Done:
          throw new ResponseParseError("data after the end of the response");
        case State.Dead:
          return;
        case State.Head:
        case State.Trailers: {
          const end = this.#findHeadEnd(data, at);
          if (end < 0) return;
          at = end;
          break;
        }
        case State.Length: {
          const take = Math.min(this.#remaining, n - at);
          this.#remaining -= take;
          const chunk = data.subarray(at, at + take);
          at += take;
          this.#events.onBody(chunk);
          if (this.#remaining === 0 && this.#state === State.Length) this.#finish();
          break;
        }
        case State.UntilClose:
          this.#events.onBody(at === 0 ? data : data.subarray(at));
          return;
        case State.ChunkSize: {
          const lf = data.indexOf(LF, at);
          const lineEnd = lf < 0 ? n : lf + 1;
          const line = this.#partial ? Buffer.concat([this.#partial, data.subarray(at, lineEnd)]) : data.subarray(at, lineEnd);
          if (line.length > MAX_CHUNK_LINE) throw new ResponseParseError("chunk-size line too long");
          at = lineEnd;
          if (lf < 0) {
            this.#partial = Buffer.from(line); // a copy: the input's memory is not ours to keep
            return;
          }
          this.#partial = undefined;
          this.#chunkSize(line);
          break;
        }
        case State.ChunkData: {
          const take = Math.min(this.#remaining, n - at);
          this.#remaining -= take;
          const chunk = data.subarray(at, at + take);
          at += take;
          this.#events.onBody(chunk);
          if (this.#remaining === 0 && this.#state === State.ChunkData) {
            this.#state = State.ChunkDataEnd;
            this.#crlfSeen = 0;
          }
          break;
        }
        case State.ChunkDataEnd: {
          const expected = this.#crlfSeen === 0 ? CR : LF;
          if (data[at] !== expected) throw new ResponseParseError("chunk data not followed by CRLF");
          at++;
          if (++this.#crlfSeen === 2) this.#state = State.ChunkSize;
          break;
        }
      }
    }
  }

  /**
   * Looks for the blank line ending a head (or trailer section) from `at`, carrying a partial one
   * over from earlier inputs. On finding it, handles it and returns the offset after it; else -1.
   */
  #findHeadEnd(data: Buffer, at: number): number {
    const read = readHeadBlock(this.#partial, data, at, this.#state === State.Trailers, () => new ResponseParseError(`response head larger than ${MAX_HEAD_BYTES} bytes`), parseError);
    if ("waiting" in read) {
      this.#partial = read.waiting;
      return -1;
    }
    this.#partial = undefined;
    // Trailers are checked, not forwarded: the client's response is framed anew.
    if (read.head === undefined) this.#finish();
    else this.#head(read.head);
    return read.end;
  }

  #head(text: string): void {
    // One pass over the characters, no split and no regex per field: this runs once per response.
    let lineEnd = text.indexOf("\r\n");
    if (lineEnd < 0) lineEnd = text.length;
    const status = scanStatusLine(text, lineEnd) ?? slowStatusLine(text.slice(0, lineEnd));
    const { minorVersion, code } = status;
    const rawHeaders: string[] = [];
    let contentLength: number | undefined;
    let chunked = false;
    let transferEncoding = false;
    let connection: string | undefined;
    let keepAliveTimeoutMs: number | undefined;
    scanFields(text, lineEnd + 2, rawHeaders, "the response head", parseError);
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i] as string;
      const value = rawHeaders[i + 1] as string;
      switch (name.length) {
        case 10:
          if (name.toLowerCase() === "connection") connection = connection === undefined ? value : `${connection},${value}`;
          else if (name.toLowerCase() === "keep-alive") keepAliveTimeoutMs = keepAliveTimeout(value) ?? keepAliveTimeoutMs;
          break;
        case 14:
          if (name.toLowerCase() !== "content-length") break;
          if (contentLength !== undefined) throw new ResponseParseError("more than one Content-Length");
          if (!DIGITS.test(value)) throw new ResponseParseError(`invalid Content-Length: ${JSON.stringify(value.slice(0, 40))}`);
          contentLength = Number(value);
          break;
        case 17:
          if (name.toLowerCase() !== "transfer-encoding") break;
          // Only chunked is understood; a coding under it (gzip, chunked) would be lost with the header.
          if (transferEncoding || value.toLowerCase() !== "chunked") throw new ResponseParseError(`unsupported Transfer-Encoding: ${JSON.stringify(value.slice(0, 40))}`);
          transferEncoding = true;
          chunked = true;
          break;
      }
    }
    if (code < 200) {
      if (code === 101) throw new ResponseParseError("101 Switching Protocols to a request that asked for no upgrade");
      return; // interim (100 Continue, 103 Early Hints): the final response follows
    }
    if (chunked && contentLength !== undefined) throw new ResponseParseError("both Content-Length and Transfer-Encoding");
    let keepAlive = minorVersion === 1;
    if (connection !== undefined) {
      for (const token of connection.split(",")) {
        const t = token.trim().toLowerCase();
        if (t === "close") keepAlive = false;
        else if (t === "keep-alive" && minorVersion === 0) keepAlive = true;
      }
    }
    const bodiless = this.#headRequest || code === 204 || code === 304;
    if (!bodiless && !chunked && contentLength === undefined) keepAlive = false; // delimited by the close
    this.#keepAlive = keepAlive;
    const fields = text.length > lineEnd + 2 ? text.slice(lineEnd + 2) : "";
    this.#events.onHead({ minorVersion, status: code, reason: status.reason, rawHeaders, fields, keepAlive, keepAliveTimeoutMs });
    if (this.#state !== State.Head) return; // aborted by the handler
    if (bodiless || contentLength === 0) this.#finish();
    else if (chunked) this.#state = State.ChunkSize;
    else if (contentLength !== undefined) {
      this.#state = State.Length;
      this.#remaining = contentLength;
    } else this.#state = State.UntilClose;
  }

  #chunkSize(line: Buffer): void {
    const size = chunkSize(line, parseError);
    if (size === 0) {
      this.#state = State.Trailers;
      this.#partial = CRLF;
      return;
    }
    this.#state = State.ChunkData;
    this.#remaining = size;
  }

  #finish(): void {
    this.#state = State.Done;
    this.#events.onEnd();
  }
}

/** Keep-Alive: timeout=N (seconds) in ms, or undefined. */
function keepAliveTimeout(value: string): number | undefined {
  const match = /(?:^|[,;\s])timeout\s*=\s*(\d{1,9})/i.exec(value);
  return match ? Number(match[1]) * 1000 : undefined;
}

