import { Agent, request } from "node:http";

export interface LoadResult {
  ok: number;
  /** `at`: when the failure was seen (ms since the epoch), to line it up with what the test did. */
  failures: { status?: number; error?: string; body?: string; at?: number }[];
  bodies: Map<string, number>;
}

/** One GET with a chosen Host header (fetch cannot set Host), with a deadline. */
export function get(url: string, host: string, agent?: Agent, timeoutMs = 35_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "GET", headers: { host }, agent, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/**
 * The first GET the proxy routes: a Service just created reaches the proxy through its watch, and
 * until then the proxy answers 404 NoRoute, which starts nothing. Asked again (every 20 ms, for
 * at most `routeWithinMs`) only while that is the answer, so the request that counts is sent once.
 */
export async function getOnceRouted(url: string, host: string, routeWithinMs = 10_000): Promise<{ status: number; body: string }> {
  const deadline = performance.now() + routeWithinMs;
  for (;;) {
    const answer = await get(url, host);
    if (answer.status !== 404 || !answer.body.includes('"NoRoute"') || performance.now() > deadline) return answer;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Continuous bounded load: `concurrency` loops of GETs until `until()` says stop (or the
 * duration runs out). Every answer is counted; anything but a 2xx is kept for the test to show.
 */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  return startLoad(options).finished;
}

interface LoadOptions {
  url: string;
  host: string;
  concurrency: number;
  durationMs: number;
  until?: () => boolean;
}

/** The same load, with its counts readable while it runs (`live`), for a test to wait on. */
export function startLoad(options: LoadOptions): { live: LoadResult; finished: Promise<LoadResult> } {
  const live: LoadResult = { ok: 0, failures: [], bodies: new Map() };
  return { live, finished: loadInto(live, options) };
}

async function loadInto(result: LoadResult, options: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  const deadline = Date.now() + options.durationMs;
  const loop = async () => {
    while (Date.now() < deadline && !options.until?.()) {
      try {
        const { status, body } = await get(options.url, options.host, agent);
        if (status >= 200 && status < 300) {
          result.ok++;
          const key = body.split(" (request")[0]!.trim();
          result.bodies.set(key, (result.bodies.get(key) ?? 0) + 1);
        } else result.failures.push({ status, body: body.slice(0, 200), at: Date.now() });
      } catch (e) {
        result.failures.push({ error: (e as Error).message, at: Date.now() });
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  agent.destroy();
  return result;
}
