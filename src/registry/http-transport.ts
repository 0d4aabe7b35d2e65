import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";

/**
 * One HTTP exchange with a registry, over node's http/https: no proxy from the environment, no
 * redirect followed here (the client decides which it follows), and every wait bounded. A
 * registry that stops sending, mid-headers or mid-body, is cut off after `idleMs`.
 */
export interface HttpRequest {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH";
  url: URL;
  headers?: Record<string, string>;
  /** A buffer, or a stream with its length (sent as Content-Length: uploads are not chunked). */
  body?: Buffer | { stream: () => Readable; length: number };
  /** No byte for this long (connecting, awaiting headers, or between chunks) fails the request. */
  idleMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body, not read yet: read it with readBounded, stream it, or discard it. */
  body: IncomingMessage;
}

export const DEFAULT_IDLE_MS = 30_000;

export function send(req: HttpRequest): Promise<HttpResponse> {
  const idleMs = req.idleMs ?? DEFAULT_IDLE_MS;
  const requestFn = req.url.protocol === "https:" ? httpsRequest : httpRequest;
  const headers: Record<string, string> = { "user-agent": "pith", ...req.headers };
  if (req.body !== undefined) headers["content-length"] = String(Buffer.isBuffer(req.body) ? req.body.length : req.body.length);
  return new Promise((resolve, reject) => {
    const client = requestFn(req.url, { method: req.method, headers, agent: false, timeout: idleMs }, (res) => {
      // From here the socket's idle timeout covers the body too: whoever reads it sees an error.
      res.socket.setTimeout(idleMs, () => res.destroy(new Error(`${req.url.host} sent nothing for ${idleMs / 1000} s`)));
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
    });
    client.on("timeout", () => client.destroy(new Error(`${req.url.host} did not answer within ${idleMs / 1000} s`)));
    client.on("error", reject);
    if (req.body === undefined) client.end();
    else if (Buffer.isBuffer(req.body)) client.end(req.body);
    else {
      const source = req.body.stream();
      source.on("error", (e) => client.destroy(e));
      source.pipe(client);
    }
  });
}

/** Reads a whole body of at most `max` bytes; a longer one is cut off and refused, never buffered. */
export async function readBounded(res: HttpResponse, max: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers["content-length"] ?? NaN);
  if (declared > max) {
    res.body.destroy();
    throw new Error(`${what} is ${declared} bytes, more than the ${max} allowed`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    total += (chunk as Buffer).length;
    if (total > max) {
      res.body.destroy();
      throw new Error(`${what} is more than the ${max} bytes allowed`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Reads and drops a body we do not need (an error's, a redirect's), at most 64 KiB of it. */
export async function discard(res: HttpResponse): Promise<string> {
  try {
    return (await readBounded(res, 64 * 1024, "the answer")).toString("utf8");
  } catch {
    return "";
  }
}
