import type { FastifyReply, FastifyRequest } from "fastify";
import { countRequest, markStreaming } from "./metrics-hook.ts";

/** Streams still open, so closing the server can end them (it would otherwise wait forever). */
export type OpenStreams = Set<ResponseStream>;

/** A client that stops reading is cut off rather than buffered for without bound; it can resume. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

/**
 * A long-lived 200 response written piece by piece (watches, console follow). Taking over the raw
 * response lets the headers go out at once, before the first event. Everything registered with
 * `onClose` or `every` is undone exactly once, when the response closes for whatever reason:
 * the client went away, `end()` was called, or the server is shutting down.
 */
export class ResponseStream {
  private closed = false;
  private readonly cleanups: (() => void)[] = [];

  /** `release` is this stream's place in its client's quota (StreamQuota), given back when it closes. */
  constructor(
    private readonly request: FastifyRequest,
    private readonly reply: FastifyReply,
    private readonly open: OpenStreams,
    headers: Record<string, string>,
    release: () => void = () => {},
  ) {
    this.cleanups.push(release);
    reply.hijack();
    markStreaming(request);
    const res = reply.raw;
    // `connection: close`: the socket goes away with the stream, so a server that is closing is not
    // kept waiting for an ended stream's keep-alive connection to time out.
    res.writeHead(200, { "cache-control": "no-cache", "x-accel-buffering": "no", connection: "close", ...headers });
    res.flushHeaders();
    open.add(this);
    res.on("close", () => this.finish());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  write(chunk: string | Buffer): void {
    if (this.closed) return;
    const res = this.reply.raw;
    res.write(chunk);
    if (res.writableLength > MAX_BUFFERED_BYTES) res.destroy();
  }

  /** Runs `fn` when the response closes (immediately if it already has). */
  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.cleanups.push(fn);
  }

  every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    this.onClose(() => clearInterval(timer));
  }

  end(): void {
    if (!this.closed) this.reply.raw.end();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.open.delete(this);
    for (const cleanup of this.cleanups.splice(0)) {
      try {
        cleanup();
      } catch (error) {
        this.request.log.error({ err: error }, "stream cleanup failed");
      }
    }
    countRequest(this.request, 200);
  }
}
