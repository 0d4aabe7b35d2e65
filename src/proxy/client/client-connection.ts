import type { Socket } from "node:net";
import { IncomingRequest, type RequestReader } from "./incoming-request.ts";
import { OutgoingResponse, type ResponseWriter } from "./outgoing-response.ts";
import { type RequestHead, RequestParseError, RequestParser } from "./request-parser.ts";

/** How long the server waits on a client; each is a bound on how long a client can hold a connection doing nothing useful. */
export interface ClientLimits {
  /** From the first byte of a request (or the connection's start) to the end of its head: slowloris protection. */
  headTimeoutMs: number;
  /** Between a response's end and the next request's first byte. */
  keepAliveTimeoutMs: number;
  /** While the server reads a body, between reads; while a response waits for the client to read it, in all. */
  clientTimeoutMs: number;
}

export interface HttpHandlers {
  onRequest(req: IncomingRequest, res: OutgoingResponse): void;
  /** The socket is the handler's from now on; `head` holds the bytes read after the request's head. */
  onUpgrade(req: IncomingRequest, socket: Socket, head: Buffer): void;
  /** A request refused before any handler saw it: answer `status` on the socket and end it. */
  onClientError(socket: Socket, status: number, message: string): void;
}

/** Bytes of pipelined requests read ahead of the one being answered before the connection stops reading. */
export const MAX_PIPELINED_BYTES = 64 * 1024;

const EMPTY = Buffer.alloc(0);
const CONTINUE = Buffer.from("HTTP/1.1 100 Continue\r\n\r\n", "latin1");

/** What the connection's deadline waits for. */
const enum Waiting {
  Nothing,
  /** The rest of a request head (or a fresh connection's first request). */
  Head,
  /** The next request on a kept-alive connection. */
  NextRequest,
  /** The next bytes of a body being read. */
  Body,
  /** The end of a body nobody wants, after its response. */
  DiscardedBody,
  /** The client's FIN, after this side ended the connection: a client that never sends it does not keep the socket. */
  Close,
}

/**
 * One client connection of Pith's HTTP server: requests parsed one at a time and answered in
 * order. A pipelined request is read ahead (at most MAX_PIPELINED_BYTES, then reading stops) but
 * parsed only once the one before it is answered, so no request reaches a handler before the
 * answer to the one it follows has been written. Every wait on the client has a deadline, which
 * the server's sweep enforces.
 */
export class ClientConnection implements RequestReader, ResponseWriter {
  readonly socket: Socket;
  readonly keepAliveHint: string;
  /** performance.now() after which the client took too long for what `#waiting` says; Infinity when waiting on nothing. */
  deadline = Number.POSITIVE_INFINITY;
  readonly #handlers: HttpHandlers;
  readonly #limits: ClientLimits;
  readonly #remoteAddress: string | undefined;
  readonly #parser: RequestParser;
  readonly #onData = (data: Buffer): void => {
    // A throw here would end the process, and every other connection with it: this one alone ends.
    try {
      this.#read(data);
    } catch (error) {
      this.#refuse(error);
    }
  };
  readonly #onEnd = (): void => this.#clientEnded();
  readonly #onDrain = (): void => {
    this.#writeBlockedSince = 0;
  };
  #waiting = Waiting.Nothing;
  #writeBlockedSince = 0;
  #request: IncomingRequest | undefined;
  #response: OutgoingResponse | undefined;
  #dispatched = false;
  /** The current response ended (the request's body may still be arriving, to be dropped). */
  #answered = false;
  /** Inside the parser's feed(): the next request may not start until it returns. */
  #feeding = false;
  /** The request was answered and read whole inside a feed: the next request starts once that feed returns. */
  #nextAfterFeed = false;
  #sentContinue = false;
  /** Bytes read after the current request: the next requests', parsed once it is answered. */
  #backlog: Buffer | undefined;
  #backlogScheduled = false;
  #backlogFull = false;
  #bodyPaused = false;
  /** The client sent its FIN: no request after the current one. */
  #ended = false;
  /** This side is ending the connection, or it closed: nothing more is read. */
  #closing = false;
  /** Server-wide: kept-alive connections end after their current response (the server is closing). */
  #drainRequested = false;

  constructor(socket: Socket, handlers: HttpHandlers, limits: ClientLimits) {
    this.socket = socket;
    this.#handlers = handlers;
    this.#limits = limits;
    this.keepAliveHint = `timeout=${Math.max(1, Math.floor(limits.keepAliveTimeoutMs / 1000))}`;
    this.#remoteAddress = socket.remoteAddress;
    this.#parser = new RequestParser({
      onHead: (head) => this.#head(head),
      onBody: (chunk) => {
        if (this.#waiting === Waiting.Body) this.deadline = performance.now() + this.#limits.clientTimeoutMs;
        this.#request?.push(chunk);
      },
      onEnd: () => {
        const request = this.#request;
        if (this.#waiting === Waiting.Body) this.#wait(Waiting.Nothing, 0);
        request?.finish();
        if (this.#answered) this.#nextAfterFeed = true;
      },
    });
    this.#wait(Waiting.Head, limits.headTimeoutMs);
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("drain", this.#onDrain);
    socket.on("error", () => undefined); // 'close' follows, and is what matters
    socket.on("close", () => {
      this.#closing = true;
      this.#wait(Waiting.Nothing, 0);
      this.#response?.emitClose();
    });
  }

  /** The client has kept the connection waiting too long (or not read a response in time) by `now`. */
  expired(now: number): boolean {
    return now > this.deadline || (this.#writeBlockedSince !== 0 && now - this.#writeBlockedSince > this.#limits.clientTimeoutMs);
  }

  /** Ends the connection for waiting too long: a 408 for a head begun, else it is just closed. */
  timedOut(): void {
    if (this.#waiting === Waiting.Head && !this.#parser.idle && !this.#closing && this.#writeBlockedSince === 0) {
      this.#refuse(new RequestParseError(408, `the request head did not arrive within ${this.#limits.headTimeoutMs} ms`));
      return;
    }
    this.socket.destroy();
  }

  /** The server is closing: an idle connection closes now, a busy one after its response. */
  drain(): void {
    this.#drainRequested = true;
    if (!this.#request && this.#parser.idle) this.socket.destroy();
  }

  // RequestReader

  bodyPaused(paused: boolean): void {
    this.#bodyPaused = paused;
    this.#syncReading();
    const request = this.#request;
    if (paused) {
      if (this.#waiting === Waiting.Body) this.#wait(Waiting.Nothing, 0);
    } else if (request && !request.complete && !request.discarding) this.#wait(Waiting.Body, this.#limits.clientTimeoutMs);
  }

  bodyWanted(): void {
    const request = this.#request;
    if (!request || request.complete) return;
    // RFC 9110 10.1.1: the client waits for this before sending the body; sent only once the body is really wanted.
    if (request.head.expectContinue && !this.#sentContinue && !this.#response?.headersSent) {
      this.#sentContinue = true;
      this.socket.write(CONTINUE);
    }
    this.#wait(Waiting.Body, this.#limits.clientTimeoutMs);
  }

  bodyDiscarded(): void {
    this.#bodyPaused = false;
    this.#syncReading();
    if (this.#request && !this.#request.complete) this.#wait(Waiting.DiscardedBody, this.#limits.headTimeoutMs);
  }

  // ResponseWriter

  keepAliveAfterResponse(): boolean {
    const request = this.#request;
    if (!request || !request.head.keepAlive || this.#ended || this.#drainRequested) return false;
    // The client still waits for 100 Continue before sending a body the proxy will not read: close rather than wait for it.
    return request.complete || !request.head.expectContinue || this.#sentContinue;
  }

  writeBlocked(): void {
    if (this.#writeBlockedSince === 0) this.#writeBlockedSince = performance.now();
  }

  responseEnded(keepAlive: boolean): void {
    this.#answered = true;
    if (!keepAlive) {
      this.#close();
      return;
    }
    const request = this.#request;
    if (request && !request.complete) {
      if (!request.discarding) request.discardBody(); // the next request starts when this body ends
      return;
    }
    if (this.#feeding) this.#nextAfterFeed = true;
    else this.#next();
  }

  #wait(what: Waiting, ms: number): void {
    this.#waiting = what;
    this.deadline = what === Waiting.Nothing ? Number.POSITIVE_INFINITY : performance.now() + ms;
  }

  #read(data: Buffer): void {
    if (this.#closing) return;
    if ((this.#request && this.#parser.done) || this.#backlogScheduled) {
      // A pipelined request, while the one before it is being answered (or read-ahead bytes wait their turn): held, bounded.
      this.#backlog = this.#backlog ? Buffer.concat([this.#backlog, data]) : data;
      if (this.#backlog.length > MAX_PIPELINED_BYTES && !this.#backlogFull) {
        this.#backlogFull = true;
        this.#syncReading();
      }
      return;
    }
    this.#parse(data);
  }

  #parse(data: Buffer): void {
    const awaitingNext = !this.#request && this.#waiting === Waiting.NextRequest;
    let end: number;
    this.#feeding = true;
    try {
      end = this.#parser.feed(data);
    } catch (error) {
      this.#refuse(error);
      return;
    } finally {
      this.#feeding = false;
    }
    if (end < data.length) this.#backlog = this.#backlog ? Buffer.concat([data.subarray(end), this.#backlog]) : data.subarray(end);
    // A head begun on a kept-alive connection but not finished in this read: from now, the head's time limit (a
    // whole head in one read, the usual case, never needs that deadline).
    if (awaitingNext && !this.#request && !this.#parser.idle && !this.#closing) this.#wait(Waiting.Head, this.#limits.headTimeoutMs);
    const request = this.#request;
    if (request && !this.#dispatched) {
      this.#dispatched = true;
      if (request.head.upgrade) {
        this.#upgrade(request);
        return;
      }
      this.#handlers.onRequest(request, this.#response as OutgoingResponse);
    }
    if (this.#nextAfterFeed) {
      this.#nextAfterFeed = false;
      this.#next();
    }
  }

  #head(head: RequestHead): void {
    this.#request = new IncomingRequest(head, this.#remoteAddress, this);
    this.#response = new OutgoingResponse(this, head.method, head.minorVersion);
    this.#dispatched = false;
    this.#answered = false;
    this.#sentContinue = false;
    this.#wait(Waiting.Nothing, 0);
  }

  /** The current request is answered and read whole: on to the next one. */
  #next(): void {
    if (!this.#request || this.#closing) return;
    this.#request = undefined;
    this.#response = undefined;
    this.#dispatched = false;
    this.#bodyPaused = false;
    this.#parser.reset();
    if (this.#ended || this.#drainRequested) {
      this.#close();
      return;
    }
    this.#wait(Waiting.NextRequest, this.#limits.keepAliveTimeoutMs);
    if (this.#backlog && !this.#backlogScheduled) {
      // On a later tick: the response that just ended may still be inside its machine connection's read.
      this.#backlogScheduled = true;
      process.nextTick(() => {
        this.#backlogScheduled = false;
        const backlog = this.#backlog;
        this.#backlog = undefined;
        this.#backlogFull = false;
        if (backlog && !this.#closing) this.#read(backlog);
        this.#syncReading();
      });
    } else this.#syncReading();
  }

  #upgrade(request: IncomingRequest): void {
    this.#closing = true; // the socket is the handler's: this connection reads nothing more
    this.#wait(Waiting.Nothing, 0);
    const socket = this.socket;
    socket.removeListener("data", this.#onData);
    socket.removeListener("end", this.#onEnd);
    socket.removeListener("drain", this.#onDrain);
    socket.pause(); // until the handler pipes it: no byte may be emitted with nobody listening
    const head = this.#backlog ?? EMPTY;
    this.#backlog = undefined;
    this.#handlers.onUpgrade(request, socket, head);
  }

  /**
   * The client's FIN. As node's server does (without httpAllowHalfOpen), that is the client leaving:
   * a request it has not had its answer to is abandoned (the exchange sees the close and logs 499).
   */
  #clientEnded(): void {
    this.#ended = true;
    if (this.#closing) return;
    if (!this.#request && this.#parser.idle && !this.#backlog) this.#close();
    else this.socket.destroy();
  }

  #refuse(error: unknown): void {
    if (this.#closing) return;
    if (!(error instanceof RequestParseError)) {
      process.stderr.write(`pith proxy: a client connection failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      this.socket.destroy();
      return;
    }
    if (this.#request) {
      // A body that breaks its framing mid-request: the request is already with a machine, so no answer can be trusted.
      this.socket.destroy();
      return;
    }
    this.#closing = true;
    this.#wait(Waiting.Close, this.#limits.keepAliveTimeoutMs);
    this.#backlog = undefined;
    this.#handlers.onClientError(this.socket, error.status, error.message);
  }

  /** Ends the connection once what is written has gone; reading goes on (and drops) until the client's FIN. */
  #close(): void {
    this.#closing = true;
    this.#backlog = undefined;
    this.#bodyPaused = false;
    this.#backlogFull = false;
    if (this.socket.isPaused()) this.socket.resume();
    this.#wait(Waiting.Close, this.#limits.keepAliveTimeoutMs);
    if (!this.socket.destroyed) this.socket.end();
  }

  #syncReading(): void {
    if (this.#closing) return;
    const stop = this.#bodyPaused || this.#backlogFull;
    if (stop && !this.socket.isPaused()) this.socket.pause();
    else if (!stop && this.socket.isPaused()) this.socket.resume();
  }
}
