/**
 * A strict, incremental HTTP/1.1 request parser for the proxy's client side (RFC 9112). The proxy
 * decides a request's route from what this parser reads, and the machine reads the request as the
 * proxy re-writes it, so any head or body the two could frame differently is refused, never
 * guessed at (the root of request smuggling):
 *
 * - the request line is `method SP origin-form SP HTTP/1.x` (`*` only for OPTIONS); absolute-form
 *   and CONNECT are refused (400, 405), other versions are 505;
 * - lines end in CRLF: a bare LF or CR anywhere in the head is a 400, and so is a folded line
 *   (obs-fold), a field name outside tchar or with whitespace before its colon, a control character
 *   in a value;
 * - the head (request line, fields) is at most MAX_HEAD_BYTES and MAX_FIELDS fields: 431 beyond;
 * - one Host (none is a 400 for HTTP/1.1; two are a 400), made of URI authority characters;
 * - the body is framed by one Content-Length of digits, or by Transfer-Encoding: chunked (HTTP/1.1
 *   only, one header, `chunked` alone: other codings are 501); both, two lengths, a list of
 *   lengths, a malformed chunk line or a missing CRLF after chunk data is a 400;
 * - Expect: 100-continue is reported for the server to answer; any other expectation is a 417;
 * - an upgrade (Connection: upgrade with an Upgrade field) has no body: the bytes after its head
 *   are the tunnel's, and the parser stops there.
 *
 * The parser stops at the end of each message: bytes after it (a pipelined request) are left to
 * the caller, which starts the next message with reset() once it has answered this one.
 * Body chunks are slices of the input, never copied.
 */

import { checkControl, listTokens, MAX_HEAD_BYTES, scanFields, TCHAR } from "../http/field-lines.ts";
import { chunkSize, MAX_CHUNK_LINE } from "../http/chunk-size.ts";
import { readHeadBlock } from "../http/head-block.ts";
import { CR, CRLF, LF } from "../http/octets.ts";

/** Most fields in one head (HAProxy's default is 101 including the start line). */
export const MAX_FIELDS = 100;
/** A chunk-size line with its extensions. */

export interface RequestHead {
  method: string;
  /** The request-target as received (origin-form, or `*`). */
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minorVersion: number;
  /** [name, value, ...] as received (values without surrounding whitespace). */
  rawHeaders: string[];
  /** The field lines as received, checked: `name: value` separated by CRLF, without the final CRLF ("" without fields). */
  fields: string;
  /** The Host field's value, or undefined (HTTP/1.0 only). */
  host: string | undefined;
  /** The client allows another request on the connection after this one. */
  keepAlive: boolean;
  /** Expect: 100-continue on an HTTP/1.1 request with a body. */
  expectContinue: boolean;
  /** Connection: upgrade with an Upgrade field: the connection becomes a tunnel after this head. */
  upgrade: boolean;
  /** The body's length, or undefined for a chunked body. 0 without a body. */
  contentLength: number | undefined;
}

export interface RequestEvents {
  onHead(head: RequestHead): void;
  onBody(chunk: Buffer): void;
  /** The request (head and body) is complete. */
  onEnd(): void;
}

/** A request the proxy refuses, with the status that says why (400, 405, 417, 431, 501, 505). */
export class RequestParseError extends Error {
  readonly code = "EBADREQUEST";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const badRequest = (message: string): Error => new RequestParseError(400, message);

const enum State {
  /** Before the first byte of a message (empty lines before it are skipped). */
  Start,
  Head,
  Length,
  ChunkSize,
  ChunkData,
  /** The CRLF after a chunk's data; `#crlfSeen` says how much of it has arrived. */
  ChunkDataEnd,
  Trailers,
  /** The message is complete: the parser takes nothing until reset(). */
  Done,
  /** After an error: everything is refused. */
  Dead,
}

const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\x00-\x20\x7f]+) HTTP\/(\d)\.(\d)$/;
/** URI host and port characters (RFC 3986 reg-name, IP-literal, port): nothing that could split or re-route a request. */
const HOST = /^[A-Za-z0-9.\-_~!$&'()*+;=:%[\]]*$/;
const DIGITS = /^\d{1,15}$/;

interface RequestLine {
  method: string;
  target: string;
  major: number;
  minor: number;
}

/**
 * The request line `text[0, end)` read character by character, as REQUEST_LINE would match it
 * (tchar method, SP, target without controls or spaces, SP, HTTP/d.d); undefined when it does not
 * match, for slowRequestLine to say why. No regex and no match array: this runs once per request.
 */
export function scanRequestLine(text: string, end: number): RequestLine | undefined {
  let i = 0;
  while (i < end && TCHAR[text.charCodeAt(i)] === 1) i++;
  if (i === 0 || i === end || text.charCodeAt(i) !== 32) return undefined;
  const targetStart = i + 1;
  let j = targetStart;
  for (; j < end; j++) {
    const c = text.charCodeAt(j);
    if (c <= 32 || c === 127 || c > 255) break;
  }
  // " HTTP/d.d" and nothing after it
  if (j === targetStart || end - j !== 9 || !text.startsWith(" HTTP/", j) || text.charCodeAt(j + 7) !== 46 /* . */) return undefined;
  const major = text.charCodeAt(j + 6) - 48;
  const minor = text.charCodeAt(j + 8) - 48;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) return undefined;
  return { method: text.slice(0, i), target: text.slice(targetStart, j), major, minor };
}

/** A request line scanRequestLine did not take: the error that says what is wrong with it (or, failing that, its parts). */
export function slowRequestLine(requestLine: string): RequestLine {
  checkControl(requestLine, 0, requestLine.length, "the request line", badRequest);
  const line = REQUEST_LINE.exec(requestLine);
  if (!line) throw badRequest(`malformed request line: ${JSON.stringify(requestLine.slice(0, 80))}`);
  return { method: line[1] as string, target: line[2] as string, major: Number(line[3]), minor: Number(line[4]) };
}

export class RequestParser {
  readonly #events: RequestEvents;
  #state = State.Start;
  /** Head (or trailer, or chunk-size line) bytes received so far while they span inputs. */
  #partial: Buffer | undefined;
  #remaining = 0;
  #crlfSeen = 0;
  /** The last read ended with a CR before any request line: the next byte must be its LF. */
  #crBeforeStart = false;

  constructor(events: RequestEvents) {
    this.#events = events;
  }

  /** No byte of a message has arrived since the last reset (empty lines aside). */
  get idle(): boolean {
    return this.#state === State.Start;
  }

  /** The head is complete and so is the body: nothing more is taken until reset(). */
  get done(): boolean {
    return this.#state === State.Done;
  }

  /** The head has been read but not all of the body. */
  get inBody(): boolean {
    return this.#state >= State.Length && this.#state <= State.Trailers;
  }

  /** Ready for the next message on the connection. */
  reset(): void {
    if (this.#state !== State.Done) throw new Error(`RequestParser.reset() before the message ended (state ${this.#state})`);
    this.#state = State.Start;
    this.#partial = undefined;
    this.#crBeforeStart = false;
  }

  /**
   * Parses `data` from `at`; events fire synchronously. Returns the offset where it stopped: the
   * end of `data`, or right after the message ended (the rest is the next message's, or an
   * upgrade's tunnel). Throws RequestParseError on a request it refuses; the parser is dead then.
   */
  feed(data: Buffer, at = 0): number {
    try {
      return this.#feed(data, at);
    } catch (error) {
      this.#state = State.Dead;
      this.#partial = undefined;
      throw error;
    }
  }

  #feed(data: Buffer, at: number): number {
    const n = data.length;
    while (at < n) {
      switch (this.#state) {
        case State.Done:
          return at;
        case State.Dead:
          throw badRequest("the request was already refused");
        case State.Start:
          // RFC 9112 2.2: empty lines before a request line are ignored (some clients send one after a POST body).
          // An empty line may span reads: a CR that ended the last one is taken with the LF that starts this one.
          if (this.#crBeforeStart) {
            this.#crBeforeStart = false;
            if (data[at] === LF) {
              at += 1;
              continue;
            }
            // Not an empty line: the CR starts the head, judged with it as if it came in one read.
            this.#partial = Buffer.from([CR]);
            this.#state = State.Head;
            continue;
          }
          while (at + 1 < n && data[at] === CR && data[at + 1] === LF) at += 2;
          if (at === n) return at;
          if (at + 1 === n && data[at] === CR) {
            this.#crBeforeStart = true;
            return n;
          }
          this.#state = State.Head;
          break;
        case State.Head:
        case State.Trailers: {
          const end = this.#findHeadEnd(data, at);
          if (end < 0) return n;
          at = end;
          break;
        }
        case State.Length: {
          const take = Math.min(this.#remaining, n - at);
          this.#remaining -= take;
          const chunk = data.subarray(at, at + take);
          at += take;
          this.#events.onBody(chunk);
          if (this.#remaining === 0) this.#finish();
          break;
        }
        case State.ChunkSize: {
          const lf = data.indexOf(LF, at);
          const lineEnd = lf < 0 ? n : lf + 1;
          const line = this.#partial ? Buffer.concat([this.#partial, data.subarray(at, lineEnd)]) : data.subarray(at, lineEnd);
          if (line.length > MAX_CHUNK_LINE) throw badRequest("chunk-size line too long");
          at = lineEnd;
          if (lf < 0) {
            this.#partial = Buffer.from(line); // a copy: the input's memory is not ours to keep
            return n;
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
          if (this.#remaining === 0) {
            this.#state = State.ChunkDataEnd;
            this.#crlfSeen = 0;
          }
          break;
        }
        case State.ChunkDataEnd: {
          const expected = this.#crlfSeen === 0 ? CR : LF;
          if (data[at] !== expected) throw badRequest("chunk data not followed by CRLF");
          at++;
          if (++this.#crlfSeen === 2) this.#state = State.ChunkSize;
          break;
        }
      }
    }
    return at;
  }

  /**
   * Looks for the blank line ending a head (or trailer section) from `at`, carrying a partial one
   * over from earlier inputs. On finding it, handles it and returns the offset after it; else -1.
   */
  #findHeadEnd(data: Buffer, at: number): number {
    const read = readHeadBlock(this.#partial, data, at, this.#state === State.Trailers, () => this.#tooLarge(), badRequest);
    if ("waiting" in read) {
      this.#partial = read.waiting;
      return -1;
    }
    this.#partial = undefined;
    // Trailers are checked, not forwarded: the body goes upstream framed anew.
    if (read.head === undefined) this.#finish();
    else this.#head(read.head);
    return read.end;
  }

  #tooLarge(): RequestParseError {
    const what = this.#state === State.Trailers ? "request trailers" : "request head";
    return new RequestParseError(431, `${what} larger than ${MAX_HEAD_BYTES} bytes`);
  }

  #head(text: string): void {
    let lineEnd = text.indexOf("\r\n");
    if (lineEnd < 0) lineEnd = text.length;
    const line = scanRequestLine(text, lineEnd) ?? slowRequestLine(text.slice(0, lineEnd));
    const { method, target } = line;
    if (line.major !== 1 || (line.minor !== 0 && line.minor !== 1)) throw new RequestParseError(505, `HTTP/${line.major}.${line.minor} is not supported: send HTTP/1.1`);
    const minorVersion = line.minor;
    if (method === "CONNECT") throw new RequestParseError(405, "CONNECT is not supported: this is a reverse proxy");
    if (target.charCodeAt(0) !== 47 /* / */ && !(target === "*" && method === "OPTIONS")) {
      throw badRequest(`the request target must be a path starting with /: ${JSON.stringify(target.slice(0, 80))}`);
    }
    const rawHeaders: string[] = [];
    const count = scanFields(text, lineEnd + 2, rawHeaders, "the request head", badRequest);
    if (count > MAX_FIELDS) throw new RequestParseError(431, `more than ${MAX_FIELDS} header fields`);

    let host: string | undefined;
    let hosts = 0;
    let contentLength: number | undefined;
    let transferEncoding: string | undefined;
    let connection: string | undefined;
    let upgradeField = false;
    let expect: string | undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i] as string;
      const value = rawHeaders[i + 1] as string;
      // By length first: most fields are none of these, and lower-casing every name would cost more.
      switch (name.length) {
        case 4:
          if (name.toLowerCase() !== "host") break;
          hosts++;
          host = value;
          break;
        case 6:
          if (name.toLowerCase() === "expect") expect = expect === undefined ? value : `${expect},${value}`;
          break;
        case 7:
          if (name.toLowerCase() === "upgrade") upgradeField = true;
          break;
        case 10:
          if (name.toLowerCase() === "connection") connection = connection === undefined ? value : `${connection},${value}`;
          break;
        case 14:
          if (name.toLowerCase() !== "content-length") break;
          if (contentLength !== undefined) throw badRequest("more than one Content-Length");
          if (!DIGITS.test(value)) throw badRequest(`invalid Content-Length: ${JSON.stringify(value.slice(0, 40))}`);
          contentLength = Number(value);
          break;
        case 17:
          if (name.toLowerCase() !== "transfer-encoding") break;
          if (transferEncoding !== undefined) throw badRequest("more than one Transfer-Encoding field");
          transferEncoding = value;
          break;
      }
    }
    if (hosts > 1) throw badRequest("more than one Host");
    if (hosts === 0 && minorVersion === 1) throw badRequest("an HTTP/1.1 request without Host");
    if (host !== undefined && !HOST.test(host)) throw badRequest(`invalid Host: ${JSON.stringify(host.slice(0, 80))}`);
    let chunked = false;
    if (transferEncoding !== undefined) {
      if (minorVersion === 0) throw badRequest("Transfer-Encoding in an HTTP/1.0 request");
      if (contentLength !== undefined) throw badRequest("both Content-Length and Transfer-Encoding");
      const codings = listTokens(transferEncoding);
      if (codings.length === 0 || codings[codings.length - 1] !== "chunked") throw badRequest(`the last Transfer-Encoding must be chunked: ${JSON.stringify(transferEncoding.slice(0, 40))}`);
      if (codings.length > 1) throw new RequestParseError(501, `unsupported Transfer-Encoding: ${JSON.stringify(transferEncoding.slice(0, 40))}; send chunked alone`);
      chunked = true;
    }
    let keepAlive = minorVersion === 1;
    let upgradeToken = false;
    if (connection !== undefined) {
      for (const token of listTokens(connection)) {
        if (token === "close") keepAlive = false;
        else if (token === "keep-alive" && minorVersion === 0) keepAlive = true;
        else if (token === "upgrade") upgradeToken = true;
      }
    }
    const upgrade = upgradeToken && upgradeField && minorVersion === 1;
    const hasBody = chunked || (contentLength !== undefined && contentLength > 0);
    if (upgrade && hasBody) throw badRequest("an upgrade request with a body");
    let expectContinue = false;
    if (expect !== undefined && minorVersion === 1) {
      if (expect.trim().toLowerCase() !== "100-continue") throw new RequestParseError(417, `unsupported expectation: ${JSON.stringify(expect.slice(0, 40))}`);
      expectContinue = hasBody;
    }
    this.#events.onHead({
      method,
      target,
      minorVersion,
      rawHeaders,
      fields: text.length > lineEnd + 2 ? text.slice(lineEnd + 2) : "",
      host,
      keepAlive,
      expectContinue,
      upgrade,
      contentLength: chunked ? undefined : (contentLength ?? 0),
    });
    if (this.#state !== State.Head) return; // ended by the handler
    if (chunked) this.#state = State.ChunkSize;
    else if (contentLength !== undefined && contentLength > 0) {
      this.#state = State.Length;
      this.#remaining = contentLength;
    } else this.#finish();
  }

  #chunkSize(line: Buffer): void {
    const size = chunkSize(line, badRequest);
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
