import type { RequestHead } from "./request-parser.ts";

/** What a request needs from its connection: reading paused while its body waits, and told when the body is wanted. */
export interface RequestReader {
  /** `paused`: this request wants no more body bytes for now (its reader is slow, or nobody reads yet). */
  bodyPaused(paused: boolean): void;
  /** The handler started reading the body (time for 100 Continue). */
  bodyWanted(): void;
  /** The handler does not want the rest of the body. */
  bodyDiscarded(): void;
}

/** Body bytes held for a request nobody reads yet before its connection stops reading: one socket read's worth. */
export const MAX_UNREAD_BODY_BYTES = 64 * 1024;
/** What a held chunk costs beyond its bytes (a Buffer object and its list slot), counted against that limit. */
const HELD_CHUNK_OVERHEAD = 64;

/**
 * One request read by Pith's HTTP server: its head, and its body as the parser hands it over.
 * The body is held (up to MAX_UNREAD_BODY_BYTES, then the connection stops reading) until the
 * handler calls readBody(), and while it is paused.
 */
export class IncomingRequest {
  readonly method: string;
  readonly target: string;
  readonly rawHeaders: readonly string[];
  readonly fields: string;
  readonly remoteAddress: string | undefined;
  readonly head: RequestHead;
  readonly #reader: RequestReader;
  #onData: ((chunk: Buffer) => void) | undefined;
  #onEnd: (() => void) | undefined;
  /** Body chunks not handed over yet; made on the first one (most requests have no body). */
  #held: Buffer[] | undefined;
  #heldBytes = 0;
  #paused = false;
  #discarding = false;
  /** The parser read the whole body. */
  #complete = false;
  /** onEnd was called. */
  #ended = false;

  constructor(head: RequestHead, remoteAddress: string | undefined, reader: RequestReader) {
    this.head = head;
    this.method = head.method;
    this.target = head.target;
    this.rawHeaders = head.rawHeaders;
    this.fields = head.fields;
    this.remoteAddress = remoteAddress;
    this.#reader = reader;
  }

  /** All of the body has been read from the client. */
  get complete(): boolean {
    return this.#complete;
  }

  get discarding(): boolean {
    return this.#discarding;
  }

  readBody(onData: (chunk: Buffer) => void, onEnd: () => void): void {
    if (this.#onData) throw new Error("readBody() called twice");
    this.#onData = onData;
    this.#onEnd = onEnd;
    this.#reader.bodyWanted();
    this.#flush();
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#reader.bodyPaused(true);
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#flush();
  }

  discardBody(): void {
    this.#discarding = true;
    this.#held = undefined;
    this.#heldBytes = 0;
    this.#paused = false;
    this.#reader.bodyDiscarded();
  }

  /** From the parser: the next slice of the body. */
  push(chunk: Buffer): void {
    if (this.#discarding || chunk.length === 0) return;
    if (this.#onData && !this.#paused && this.#heldBytes === 0) {
      this.#onData(chunk);
      return;
    }
    // A copy: the slice is a view of the socket's whole read, which it would keep alive (a 1-byte
    // chunk behind a long chunk extension held 64 KiB). And each held chunk counts its overhead too,
    // so many tiny chunks cannot pile up objects under the byte limit.
    (this.#held ??= []).push(Buffer.from(chunk));
    this.#heldBytes += chunk.length + HELD_CHUNK_OVERHEAD;
    if (this.#heldBytes >= MAX_UNREAD_BODY_BYTES) this.#reader.bodyPaused(true);
  }

  /** From the parser: the body is complete. */
  finish(): void {
    this.#complete = true;
    if (this.#heldBytes === 0) this.#end();
  }

  /** Hands over what was held, as long as the reader reads; then the end, or reading again. */
  #flush(): void {
    if (!this.#onData) return;
    const held = this.#held;
    while (held && held.length > 0 && !this.#paused && !this.#discarding) {
      const chunk = held.shift() as Buffer;
      this.#heldBytes -= chunk.length + HELD_CHUNK_OVERHEAD;
      this.#onData(chunk);
    }
    if (this.#paused || this.#discarding) return;
    if (this.#complete) this.#end();
    else this.#reader.bodyPaused(false);
  }

  #end(): void {
    if (this.#ended || !this.#onEnd || this.#paused || this.#discarding) return;
    this.#ended = true;
    this.#onEnd();
  }
}
