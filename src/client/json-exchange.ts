import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";

/** A whole answer: status and body text. */
export interface Exchanged {
  status: number;
  statusText: string;
  text: string;
}

/** Answers larger than this are cut off with an error rather than held in memory (a list of 10,000 machines is ~10 MB). */
const MAX_ANSWER_BYTES = 256 * 1024 * 1024;

/**
 * Short requests (a JSON body or none, a whole-text answer) over node's http with a keep-alive
 * pool. The client's short requests go here instead of fetch, which costs several times the CPU
 * per request (undici's web streams and their transfer wrappers): in a scale-out the agent's
 * status writes are most of the requests. Streams (watches, console follows) stay on fetch.
 * Idle pooled sockets do not keep a process alive (node's Agent unrefs them).
 */
export class JsonExchange {
  readonly #base: URL;
  readonly #agent: HttpAgent;
  readonly #request: typeof httpRequest;

  constructor(server: string) {
    this.#base = new URL(server);
    const https = this.#base.protocol === "https:";
    this.#agent = https ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
    this.#request = https ? httpsRequest : httpRequest;
  }

  /**
   * Rejects with the network error (its `code`, e.g. ECONNREFUSED or ECONNRESET), or, once
   * `signal` aborts, with the signal's reason (a TimeoutError for AbortSignal.timeout).
   */
  send(method: string, path: string, headers: Record<string, string>, body: string | undefined, signal: AbortSignal | undefined): Promise<Exchanged> {
    return new Promise<Exchanged>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const url = new URL(path, this.#base);
      const request = this.#request(url, {
        method,
        agent: this.#agent,
        headers: body === undefined ? headers : { ...headers, "content-length": String(Buffer.byteLength(body)) },
      });
      const onAbort = () => request.destroy(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
      signal?.addEventListener("abort", onAbort, { once: true });
      const settle = () => signal?.removeEventListener("abort", onAbort);
      request.on("error", (error) => {
        settle();
        reject(signal?.aborted ? signal.reason : error);
      });
      request.on("response", (response) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        response.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > MAX_ANSWER_BYTES) request.destroy(new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`));
          else chunks.push(chunk);
        });
        response.on("end", () => {
          settle();
          resolve({ status: response.statusCode ?? 0, statusText: response.statusMessage ?? "", text: Buffer.concat(chunks).toString("utf8") });
        });
        response.on("error", (error) => {
          settle();
          reject(signal?.aborted ? signal.reason : error);
        });
        // A connection that ends mid-answer without an error must not leave the caller waiting.
        response.on("close", () => {
          settle();
          if (!response.complete) reject(new Error("the connection closed before the answer was complete"));
        });
      });
      request.on("close", () => {
        settle();
        reject(new Error("the connection closed before an answer"));
      });
      request.end(body);
    });
  }
}
