import type { Duplex } from "node:stream";
import { type ResponseHead, ResponseParser } from "./response-parser.ts";
import type { UpstreamReader } from "./upstream-connector.ts";
import { UpstreamTimeout } from "./upstream-errors.ts";

/** Whoever has the connection for one request: told about its response, or its failure. */
export interface UpstreamUser {
  onResponseHead(head: ResponseHead): void;
  onResponseBody(chunk: Buffer): void;
  /** The response is complete. The connection goes back to its pool right after (unless the user closed it). */
  onResponseEnd(): void;
  /** All of one read from the machine has been handed on (a moment to flush what was held back). */
  onResponseRead(): void;
  /** The connection failed (error, close, timeout, malformed response) before the response was complete. */
  onUpstreamFailure(error: Error, connected: boolean): void;
}

/**
 * The read buffer of every upstream connection whose connector reads directly (UpstreamReader):
 * one for the process, as node's own reads would allocate per read. A read is parsed whole before
 * the next one can happen, and nothing keeps its bytes: the parser copies what it carries over and
 * body chunks are copied before they leave the connection.
 */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** A machine closing the connection before the response ended, as node's http client reports it. */
const hangUp = (): Error => Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });

/**
 * One connection to a machine, carrying one request at a time: the request head written as one
 * buffer, the response parsed by a ResponseParser and handed to the current user. Kept alive by
 * its pool between requests. Opened by the pool's connector, so it is any Duplex, not necessarily
 * a net.Socket: time limits are its own timers, not socket.setTimeout.
 */
export class UpstreamConnection {
  readonly socket: Duplex;
  connected = false;
  /** performance.now() when it went idle; how long it may stay so (the pool's default, or the machine's Keep-Alive hint). */
  idleSince = 0;
  idleLimitMs: number;
  readonly #parser: ResponseParser;
  readonly #upstreamTimeoutMs: number;
  readonly #onEnded: (connection: UpstreamConnection) => void;
  readonly #onClosed: (connection: UpstreamConnection) => void;
  #user: UpstreamUser | undefined;
  /**
   * performance.now() by which the machine must have sent something: moved on by each request and
   * read. The timer is not moved with it (re-arming a timer per request costs more than the rest of
   * the bookkeeping): when it fires early it is re-armed for what is left. Inert while idle.
   */
  #deadline = 0;
  #timer: NodeJS.Timeout | undefined;
  #ended = false;
  #closed = false;

  /**
   * Opens it through `connect` (given the connection's reader, for a connector that reads directly).
   */
  constructor(
    connect: (reader: UpstreamReader) => Duplex,
    options: {
      upstreamTimeoutMs: number;
      idleLimitMs: number;
      /** The response ended with the connection reusable; not called when it is not. */
      onEnded: (connection: UpstreamConnection) => void;
      /** Closed, for whatever reason. */
      onClosed: (connection: UpstreamConnection) => void;
    },
  ) {
    let direct = false;
    const socket = connect({
      buffer: SHARED_READ_BUFFER,
      onRead: (bytes) => {
        direct = true;
        this.#data(bytes);
      },
    });
    this.socket = socket;
    this.#upstreamTimeoutMs = options.upstreamTimeoutMs;
    this.idleLimitMs = options.idleLimitMs;
    this.#onEnded = options.onEnded;
    this.#onClosed = options.onClosed;
    this.#parser = new ResponseParser({
      onHead: (head) => {
        if (head.keepAliveTimeoutMs !== undefined) this.idleLimitMs = Math.min(this.idleLimitMs, head.keepAliveTimeoutMs - 1000);
        this.#user?.onResponseHead(head);
      },
      // A chunk of the shared read buffer is copied: the user may keep it (until the client's socket takes it).
      onBody: (chunk) => this.#user?.onResponseBody(direct ? Buffer.from(chunk) : chunk),
      onEnd: () => {
        this.#ended = true;
        this.#user?.onResponseEnd();
      },
    });
    socket.on("data", (data: Buffer) => this.#data(data));
    socket.on("end", () => this.#eof());
    socket.on("error", (error: Error) => this.#fail(error));
    socket.on("close", () => this.#close());
  }

  get busy(): boolean {
    return this.#user !== undefined;
  }

  /** Some byte of the current response has arrived (a failure now is past retrying). */
  get responseStarted(): boolean {
    return this.#parser.started;
  }

  get closed(): boolean {
    return this.#closed || this.socket.destroyed;
  }

  /**
   * Sends a request: `head` is its serialised head (see requestHead); a body, if any, follows with
   * write(). The response goes to `user`.
   */
  send(user: UpstreamUser, method: string, head: string): void {
    this.#user = user;
    this.#ended = false;
    this.#parser.start(method);
    this.#deadline = performance.now() + this.#upstreamTimeoutMs;
    this.#timer ??= setTimeout(() => this.#timedOut(), this.#upstreamTimeoutMs).unref();
    this.socket.write(head, "latin1");
  }

  /** Request body bytes; false when the caller should wait for 'drain'. */
  write(chunk: Buffer | string): boolean {
    return this.socket.write(chunk);
  }

  /** Stops reading (the client is slow); resume() goes on. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Closes it now; the user, if any, hears nothing more. */
  destroy(): void {
    this.#user = undefined;
    this.#parser.abort();
    this.socket.destroy();
  }

  #data(data: Buffer): void {
    const user = this.#user;
    if (user) this.#deadline = performance.now() + this.#upstreamTimeoutMs;
    try {
      this.#parser.feed(data);
    } catch (error) {
      this.#fail(error as Error);
      return;
    }
    if (!this.#ended) {
      user?.onResponseRead();
      return;
    }
    // Handed back only now that this read is parsed: a next request must not see its leftover bytes.
    this.#ended = false;
    if (this.#user === user && user) {
      this.#user = undefined;
      if (this.#parser.reusable && !this.#closed) this.#onEnded(this);
      else this.destroy();
    }
  }

  #eof(): void {
    const user = this.#user;
    let error: Error | undefined;
    try {
      this.#parser.end(); // completes a body delimited by the close (onResponseEnd)
    } catch (e) {
      error = e as Error;
    }
    const completed = this.#ended;
    this.destroy();
    if (user && !completed) user.onUpstreamFailure(error ?? hangUp(), this.connected);
  }

  #timedOut(): void {
    const early = this.#deadline - performance.now();
    if (early > 0) {
      this.#timer = setTimeout(() => this.#timedOut(), Math.ceil(early)).unref();
      return;
    }
    this.#timer = undefined; // the next request arms one again
    if (!this.#user) return;
    this.#fail(new UpstreamTimeout("EUPSTREAMTIMEOUT", `nothing received for ${this.#upstreamTimeoutMs} ms`));
  }

  #fail(error: Error): void {
    const user = this.#user;
    this.destroy();
    user?.onUpstreamFailure(error, this.connected);
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    const user = this.#user;
    this.#user = undefined;
    this.#parser.abort();
    this.#onClosed(this);
    user?.onUpstreamFailure(hangUp(), this.connected);
  }
}
