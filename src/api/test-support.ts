import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { SecretBox } from "../secrets/secret-box.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { SqliteStore, type SqliteStoreOptions } from "../store/sqlite/sqlite-store.ts";
import { createApiServer, type ApiServerOptions } from "./api-server.ts";

/** A real API server on 127.0.0.1 (random port) over a SqliteStore in a temp directory. */
export interface TestServer {
  url: string;
  token: string;
  dir: string;
  store: SqliteStore;
  app: FastifyInstance;
  /** fetch with the token (unless headers say otherwise) and a JSON body if given. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  close(): Promise<void>;
}

export async function startTestServer(
  options: { store?: SqliteStoreOptions; server?: Partial<ApiServerOptions> } = {},
): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), "pith-api-"));
  const store = SqliteStore.open(join(dir, "store.db"), options.store);
  const token = "a".repeat(64);
  const app = await createApiServer({ store, token, tokens: store.tokens, secrets: new SecretBox(randomBytes(32)), ...options.server });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  const url = `http://127.0.0.1:${address.port}`;
  return {
    url,
    token,
    dir,
    store,
    app,
    call: (method, path, body, headers = {}) =>
      fetch(url + path, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      }),
    async close() {
      // fetch (undici) may open a spare connection that never sends a request; Node's server.close
      // waits for such sockets until they time out. The streams were ended by then; cut the rest.
      const timer = setTimeout(() => app.server.closeAllConnections(), 100);
      await app.close();
      clearTimeout(timer);
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const service = (name: string, spec: Record<string, unknown> = { image: "hello", replicas: 1 }, labels?: Record<string, string>) => ({
  apiVersion: "pith.dev/v1",
  kind: "Service",
  metadata: { name, ...(labels ? { labels } : {}) },
  spec,
});

/** Reads a streaming body line by line (NDJSON) or chunk by chunk. */
export class StreamReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private buffered = "";

  constructor(response: Response) {
    if (!response.body) throw new Error("no body");
    this.reader = response.body.getReader();
  }

  /** Reads until `separator` appears; returns the text before it (consumed with the separator). */
  async until(separator: string, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.buffered.indexOf(separator);
      if (at >= 0) {
        const text = this.buffered.slice(0, at);
        this.buffered = this.buffered.slice(at + separator.length);
        return text;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${JSON.stringify(separator)}; have ${JSON.stringify(this.buffered)}`);
      const chunk = await Promise.race([
        this.reader.read(),
        new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), left).unref()),
      ]);
      if (chunk === "timeout") continue;
      if (chunk.done) throw new Error(`stream ended; have ${JSON.stringify(this.buffered)}`);
      this.buffered += this.decoder.decode(chunk.value, { stream: true });
    }
  }

  /** The next NDJSON line, parsed. */
  async json<T = { type: string; object: { metadata: { name: string; resourceVersion: string } } }>(timeoutMs?: number): Promise<T> {
    return JSON.parse(await this.until("\n", timeoutMs)) as T;
  }

  /** Reads everything until the stream ends. */
  async rest(timeoutMs = 5000): Promise<string> {
    let text = "";
    for (;;) {
      try {
        text += await this.until("\u0000never\u0000", timeoutMs);
      } catch (error) {
        if (String(error).includes("stream ended")) return this.buffered;
        throw error;
      }
    }
  }

  async cancel(): Promise<void> {
    await this.reader.cancel();
  }
}
