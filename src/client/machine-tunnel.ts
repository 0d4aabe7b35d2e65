/**
 * The client side of the API's machine tunnel (`GET /api/v1/machines/:name/tunnel/:port` with
 * `Upgrade: pith-tunnel`, src/api/routes/tunnel.ts): a byte stream to a machine's guest port for a
 * client that cannot, or need not, reach the machine itself. The proxy running as a machine
 * (ApiTunnelConnector) and `pith port-forward` use it.
 */
import { connect, type Socket } from "node:net";
import { Duplex } from "node:stream";

/** Mirrors src/api/routes/tunnel.ts (not imported: a client, and the proxy image, should not bundle the API). */
const TUNNEL_PROTOCOL = "pith-tunnel";
/** A response head longer than this is not the API's. */
const MAX_HEAD_BYTES = 16 * 1024;
/** An error body is only read for its message. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export interface ApiTunnelOptions {
  /** Where to dial the control plane's API (inside a machine: its egress address). */
  host: string;
  port: number;
  /** The API's bearer token. */
  token: string;
  /** The Host header sent (default host:port); the API does not route by it. */
  hostHeader?: string;
}

/** An error on the way to a machine through the API; `code` says how it failed. */
export class TunnelError extends Error {
  constructor(
    message: string,
    /** ECONNREFUSED & co. from the machine's side (the API's 502), or ETUNNEL* for the API's refusals. */
    readonly code: string,
    /** The API's status code; 0 when the API itself could not be reached. */
    readonly status: number,
  ) {
    super(message);
    this.name = "TunnelError";
  }
}

/** What each refusal of the tunnel route is, as a code (TunnelError.code). */
export const CODE_BY_STATUS: Record<number, string> = { 401: "ETUNNELAUTH", 403: "ETUNNELFORBIDDEN", 404: "ETUNNELNOTFOUND", 409: "ETUNNELNOTREADY", 426: "ETUNNELPROTOCOL" };

/**
 * A connection to a machine through the API, shaped like a connecting net.Socket (what the proxy's
 * agents and upgrade tunnels expect of a connector): writes made before it is connected are held,
 * 'connect' comes once the API answered 101, and 'error' (then 'close') if it refused or failed.
 * It delegates the socket knobs (timeouts, keep-alive, ref) to its TCP connection to the API.
 */
export class TunnelSocket extends Duplex {
  readonly #inner: Socket;
  readonly #label: string;
  #connected = false;
  /** Writes made while connecting, and a pending end. */
  #queued: { chunk: Buffer; callback: (error?: Error | null) => void }[] = [];
  #finalPending: ((error?: Error | null) => void) | undefined;
  timeout: number | undefined;

  /** `guestPort` may still be being looked up: the TCP connection to the API opens meanwhile. */
  constructor(options: ApiTunnelOptions, machine: string, guestPort: number | Promise<number>) {
    super({ allowHalfOpen: false });
    this.#label = `machine ${machine} through the API at ${options.host}:${options.port}`;
    const inner = connect({ host: options.host, port: options.port, noDelay: true });
    this.#inner = inner;
    inner.on("error", (error) => this.destroy(error));
    inner.on("timeout", () => this.emit("timeout"));
    const request = (port: number): void => {
      if (this.destroyed) return;
      const path = `/api/v1/machines/${encodeURIComponent(machine)}/tunnel/${port}`;
      inner.write(
        `GET ${path} HTTP/1.1\r\nHost: ${options.hostHeader ?? `${options.host}:${options.port}`}\r\n` +
          `Authorization: Bearer ${options.token}\r\nConnection: Upgrade\r\nUpgrade: ${TUNNEL_PROTOCOL}\r\n\r\n`,
      );
    };
    // Writes to a connecting socket are queued by net, so the head may go before 'connect'.
    if (typeof guestPort === "number") request(guestPort);
    else guestPort.then(request, (error: unknown) => this.destroy(error instanceof Error ? error : new Error(String(error))));
    this.#handshake();
  }

  get connecting(): boolean {
    return !this.#connected && !this.destroyed;
  }

  /** Reads the API's answer: 101 makes the tunnel; anything else is read whole and becomes the error. */
  #handshake(): void {
    const inner = this.#inner;
    let buffered: Buffer = Buffer.alloc(0);
    let error: { status: number; headEnd: number; length: number | undefined } | undefined;
    const fail = (status: number, message: string, code?: string): void => {
      inner.removeListener("data", onData);
      inner.removeListener("end", onEnd);
      this.destroy(new TunnelError(`cannot reach ${this.#label}: ${message}`, code ?? CODE_BY_STATUS[status] ?? "ETUNNEL", status));
    };
    const refused = (): void => {
      if (!error) return;
      const body = buffered.subarray(error.headEnd, error.length === undefined ? undefined : error.headEnd + error.length).toString("utf8");
      let message = `the API answered ${error.status}`;
      let cause: string | undefined;
      try {
        const parsed = JSON.parse(body) as { error?: { message?: unknown; cause?: unknown } };
        if (typeof parsed.error?.message === "string") message += `: ${parsed.error.message}`;
        if (typeof parsed.error?.cause === "string") cause = parsed.error.cause;
      } catch {
        if (body.trim()) message += `: ${body.trim().slice(0, 200)}`;
      }
      fail(error.status, message, error.status === 502 ? cause : undefined);
    };
    const onEnd = (): void => {
      if (error) refused();
      else fail(0, "the API closed the connection before answering", "ECONNRESET");
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (error) {
        if (error.length !== undefined && buffered.length >= error.headEnd + error.length) refused();
        else if (buffered.length > MAX_HEAD_BYTES + MAX_ERROR_BODY_BYTES) refused();
        return;
      }
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buffered.length > MAX_HEAD_BYTES) fail(0, "the API's answer has no end of headers", "ETUNNELPROTOCOL");
        return;
      }
      const head = buffered.toString("latin1", 0, end);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? NaN);
      if (!Number.isInteger(status)) {
        fail(0, `the answer is not HTTP: ${JSON.stringify(head.slice(0, 60))}`, "ETUNNELPROTOCOL");
        return;
      }
      if (status === 101) {
        inner.removeListener("data", onData);
        inner.removeListener("end", onEnd);
        this.#open(buffered.subarray(end + 4));
        return;
      }
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1];
      error = { status, headEnd: end + 4, length: length === undefined ? undefined : Number(length) };
      onData(Buffer.alloc(0));
    };
    inner.on("data", onData);
    inner.on("end", onEnd);
  }

  #open(rest: Buffer): void {
    if (this.destroyed) return; // the proxy gave up on it (connect timeout): no late 'connect'
    const inner = this.#inner;
    this.#connected = true;
    inner.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) inner.pause();
    });
    inner.on("end", () => this.push(null));
    inner.on("close", () => {
      if (!this.readableEnded) this.push(null);
      if (!this.writableFinished) this.destroy();
    });
    const queued = this.#queued;
    this.#queued = [];
    for (const { chunk, callback } of queued) inner.write(chunk, callback);
    if (this.#finalPending) {
      const callback = this.#finalPending;
      this.#finalPending = undefined;
      inner.end(() => callback());
    }
    this.emit("connect");
    // Like a socket's: 'connect' before any byte from the machine.
    if (rest.length > 0 && !this.destroyed) this.push(rest);
  }

  override _read(): void {
    if (this.#connected) this.#inner.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#connected) this.#inner.write(chunk, callback);
    else this.#queued.push({ chunk, callback });
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#connected) this.#inner.end(() => callback());
    else this.#finalPending = callback;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#inner.destroy();
    for (const { callback: queued } of this.#queued.splice(0)) queued(error ?? new Error("the tunnel was closed"));
    callback(error);
  }

  setTimeout(ms: number, callback?: () => void): this {
    this.timeout = ms;
    this.#inner.setTimeout(ms);
    if (callback) this.once("timeout", callback);
    return this;
  }

  setNoDelay(noDelay?: boolean): this {
    this.#inner.setNoDelay(noDelay);
    return this;
  }

  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.#inner.setKeepAlive(enable, initialDelay);
    return this;
  }

  ref(): this {
    this.#inner.ref();
    return this;
  }

  unref(): this {
    this.#inner.unref();
    return this;
  }
}
