import { createHash } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { ApiError } from "./api-error.ts";

/**
 * Counts the long-lived streams (watches, console follows) each client holds, so one client
 * cannot make the control plane hold watches without bound. A client is its credential and its
 * address together: two processes on one host with different tokens are counted apart, and so
 * are two hosts sharing a token.
 */
export class StreamQuota {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Counts one more stream for the request's client, or throws 429; call the result when it closes. */
  acquire(request: FastifyRequest): () => void {
    const key = clientKey(request);
    const count = this.open.get(key) ?? 0;
    if (count >= this.max) {
      throw new ApiError(
        "TooManyRequests",
        `this client already has ${count} watches or console follows open (at most ${this.max})`,
        "close streams you no longer read (one watch of /api/v1/watch covers every kind), then retry",
      );
    }
    this.open.set(key, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left <= 0) this.open.delete(key);
      else this.open.set(key, left);
    };
  }
}

function clientKey(request: FastifyRequest): string {
  const query = request.query as Record<string, unknown> | undefined;
  const credential = request.headers.authorization ?? (typeof query?.token === "string" ? query.token : "");
  // A digest, so no token is kept in memory longer than the request that carried it.
  return `${request.ip} ${createHash("sha256").update(credential).digest("hex").slice(0, 32)}`;
}
