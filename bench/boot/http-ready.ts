/**
 * Readiness as a client sees it: the first full HTTP 200 from the forwarded port. QEMU's user
 * network accepts a TCP connection on a forwarded port whether or not anything listens in the
 * guest, so a connection proves nothing; only a 200 status line counts.
 *
 * Polling has two phases, because a probe can fail in two ways:
 *
 *  1. Until the guest's network is up, the user network cannot hand a connection to the guest:
 *     an attempt just hangs. Attempts overlap, one every `intervalMs`, each dropped after
 *     `attemptTimeoutMs`, so a hanging attempt never delays the next.
 *  2. Once the guest's TCP stack has answered an attempt (reset or closed it, with no HTTP
 *     response: the app does not listen yet), the network is up and an attempt either fails at
 *     once or reaches the app. From then on one attempt at a time, the next `intervalMs` after
 *     the last failed, with no short timeout. Overlapping attempts here would queue requests at
 *     an app that, under emulation, can take longer than the interval to answer one: measured,
 *     an attempt every 20 ms with a 500 ms timeout kept node in the guest busy answering clients
 *     that had already given up, for 20-40 s and once past 60 s.
 */
import { connect, type Socket } from "node:net";

export interface ReadyOptions {
  port: number;
  path?: string;
  /** How often to start an attempt (phase 1), or the pause after a failed one (phase 2). */
  intervalMs?: number;
  /** Phase 1: an attempt hanging this long is dropped. */
  attemptTimeoutMs?: number;
  /** Phase 2: an attempt that reached the guest gets this long to answer before it is retried. */
  answerTimeoutMs?: number;
  /** Give up entirely after this long. */
  timeoutMs: number;
  /** Settles when the machine has died: waiting longer is pointless. */
  abandon?: Promise<string>;
}

/** Resolves with performance.now() when the first HTTP 200 status line arrives. */
export function waitForHttp200(options: ReadyOptions): Promise<number> {
  const { port, path = "/", intervalMs = 20, attemptTimeoutMs = 500, answerTimeoutMs = 10_000, timeoutMs } = options;
  return new Promise<number>((resolve, reject) => {
    let done = false;
    let guestAnswered = false;
    let attempts = 0;
    let lastFailure = "no attempt finished";
    let lastStartedAt = 0;
    let lastEndedAt = 0;
    /** Attempts in flight, each with the function that ends it. */
    const inFlight = new Map<Socket, (why: string | undefined) => void>();

    const finish = (error: Error | undefined, at?: number): void => {
      if (done) return;
      done = true;
      clearInterval(ticker);
      clearTimeout(deadline);
      for (const end of [...inFlight.values()]) end(undefined);
      if (error) reject(error);
      else resolve(at!);
    };

    const attempt = (): void => {
      attempts++;
      lastStartedAt = performance.now();
      const socket = connect({ host: "127.0.0.1", port });
      let connected = false;
      let received = "";
      let ended = false;
      const end = (why: string | undefined): void => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        inFlight.delete(socket);
        socket.destroy();
        lastEndedAt = performance.now();
        if (why) lastFailure = why;
      };
      inFlight.set(socket, end);
      const timer = setTimeout(() => end("attempt timed out"), guestAnswered ? answerTimeoutMs : attemptTimeoutMs);
      const failed = (why: string): void => {
        if (ended) return;
        // Connected to QEMU, then closed with no response: the guest's TCP stack refused it, so
        // its network is up (phase 2). Attempts still hanging from phase 1 are dropped.
        if (connected && !received && !guestAnswered) {
          guestAnswered = true;
          for (const [other, endOther] of [...inFlight]) if (other !== socket) endOther(undefined);
        }
        end(why);
      };
      socket.setNoDelay(true);
      socket.on("connect", () => {
        connected = true;
        socket.write(`GET ${path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: pith-bench\r\n\r\n`);
      });
      socket.on("data", (chunk: Buffer) => {
        if (ended) return;
        received += chunk.toString("latin1");
        const eol = received.indexOf("\r\n");
        if (eol < 0 && received.length < 64) return;
        const statusLine = received.slice(0, eol < 0 ? received.length : eol);
        const at = performance.now();
        if (/^HTTP\/1\.[01] 200\b/.test(statusLine)) {
          end(undefined);
          finish(undefined, at);
        } else {
          guestAnswered = true;
          end(`got ${JSON.stringify(statusLine)}`);
        }
      });
      socket.on("error", (e) => failed(e.message));
      socket.on("close", () => failed(received ? "closed after a partial response" : "closed without a response"));
    };

    // Ticks faster than the interval so that phase 2's pause after a failure stays close to it.
    const ticker = setInterval(() => {
      if (done) return;
      const now = performance.now();
      if (!guestAnswered) {
        if (now - lastStartedAt >= intervalMs) attempt();
      } else if (inFlight.size === 0 && now - lastEndedAt >= intervalMs) attempt();
    }, Math.max(1, Math.floor(intervalMs / 4)));
    const deadline = setTimeout(
      () => finish(new Error(`no HTTP 200 on 127.0.0.1:${port} within ${Math.round(timeoutMs / 1000)} s (${attempts} attempts; last: ${lastFailure})`)),
      timeoutMs,
    );
    options.abandon?.then((why) => finish(new Error(`the machine ended before answering: ${why}`)), (e: unknown) => finish(e instanceof Error ? e : new Error(String(e))));
    attempt();
  });
}
