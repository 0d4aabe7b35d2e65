/**
 * Readiness as a client sees it: the first full HTTP 200 from the forwarded port. QEMU's user
 * network accepts a TCP connection on a forwarded port whether or not anything listens in the
 * guest, so a connection proves nothing; only a 200 status line counts.
 */
import { connect } from "node:net";

export interface ReadyOptions {
  port: number;
  path?: string;
  /** A new attempt starts this often, whether or not earlier ones have finished. */
  intervalMs?: number;
  /** Each attempt gives up after this long. */
  attemptTimeoutMs?: number;
  /** Give up entirely after this long. */
  timeoutMs: number;
  /** Settles when the machine has died: waiting longer is pointless. */
  abandon?: Promise<string>;
}

/**
 * Resolves with performance.now() at the first HTTP 200. Attempts overlap (one starts every
 * `intervalMs`) so that an attempt stuck in the user network's connection to a guest that is
 * not up yet does not delay noticing the app by its whole timeout.
 */
export function waitForHttp200(options: ReadyOptions): Promise<number> {
  const { port, path = "/", intervalMs = 20, attemptTimeoutMs = 500, timeoutMs } = options;
  return new Promise<number>((resolve, reject) => {
    let done = false;
    let attempts = 0;
    let lastFailure = "no attempt finished";
    const sockets = new Set<ReturnType<typeof connect>>();
    const finish = (error: Error | undefined, at?: number): void => {
      if (done) return;
      done = true;
      clearInterval(ticker);
      clearTimeout(deadline);
      for (const s of sockets) s.destroy();
      if (error) reject(error);
      else resolve(at!);
    };
    const attempt = (): void => {
      attempts++;
      const socket = connect({ host: "127.0.0.1", port });
      sockets.add(socket);
      let received = "";
      let ended = false;
      const timer = setTimeout(() => end("attempt timed out"), attemptTimeoutMs);
      const end = (why: string | undefined): void => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        sockets.delete(socket);
        socket.destroy();
        if (why) lastFailure = why;
      };
      socket.setNoDelay(true);
      socket.on("connect", () => socket.write(`GET ${path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: pith-bench\r\n\r\n`));
      socket.on("data", (chunk: Buffer) => {
        received += chunk.toString("latin1");
        const eol = received.indexOf("\r\n");
        if (eol < 0 && received.length < 64) return;
        const statusLine = received.slice(0, eol < 0 ? received.length : eol);
        const ok = /^HTTP\/1\.[01] 200\b/.test(statusLine);
        const at = performance.now();
        end(ok ? undefined : `got ${JSON.stringify(statusLine)}`);
        if (ok) finish(undefined, at);
      });
      socket.on("error", (e) => end(e.message));
      socket.on("close", () => end(received ? undefined : "closed without a response"));
    };
    const ticker = setInterval(() => !done && attempt(), intervalMs);
    const deadline = setTimeout(
      () => finish(new Error(`no HTTP 200 on 127.0.0.1:${port} within ${Math.round(timeoutMs / 1000)} s (${attempts} attempts; last: ${lastFailure})`)),
      timeoutMs,
    );
    options.abandon?.then((why) => finish(new Error(`the machine ended before answering: ${why}`)));
    attempt();
  });
}
