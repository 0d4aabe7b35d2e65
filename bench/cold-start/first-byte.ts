/** One HTTP GET on a fresh connection, timed from writing the request until the response's first byte. */
import { connect } from "node:net";

export interface TimedResponse {
  /** performance.now() when the request was written (the connection was already open). */
  sentAt: number;
  /** performance.now() when the first response byte arrived. */
  firstByteAt: number;
  firstByteMs: number;
  status: number;
  body: string;
}

export function timedGet(options: { port: number; host: string; path?: string; timeoutMs: number }): Promise<TimedResponse> {
  const { port, host, path = "/", timeoutMs } = options;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.setNoDelay(true);
    let sentAt = 0;
    let firstByteAt = 0;
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error(`no complete response within ${timeoutMs} ms${firstByteAt ? " (first byte came)" : ""}`)), timeoutMs);
    socket.once("connect", () => {
      sentAt = performance.now();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: pith-bench-cold-start\r\nConnection: close\r\n\r\n`);
    });
    socket.on("data", (chunk: Buffer) => {
      if (!firstByteAt) firstByteAt = performance.now();
      chunks.push(chunk);
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once("end", () => {
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString("utf8");
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!status || !firstByteAt) return reject(new Error(`no HTTP response: ${JSON.stringify(text.slice(0, 200))}`));
      const split = text.indexOf("\r\n\r\n");
      resolve({ sentAt, firstByteAt, firstByteMs: firstByteAt - sentAt, status: Number(status[1]), body: split < 0 ? "" : text.slice(split + 4) });
    });
  });
}
