/** Runs wrk and reads its summary (requests/s, the --latency percentiles, errors). */
import { spawn } from "node:child_process";

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  /** Latency percentiles from --latency, in ms. */
  p50: number;
  p75: number;
  p90: number;
  p99: number;
  /** Connect, read, write and timeout errors added up. */
  socketErrors: number;
  non2xx: number;
}

export interface WrkOptions {
  url: string;
  host: string;
  connections: number;
  threads: number;
  seconds: number;
  /** Called with the child's pid (for cleanup) as soon as it runs. */
  onSpawn?: (pid: number) => void;
}

/** `wrk -tT -cC -dDs --latency -H "Host: ..." URL`; rejects if wrk fails or overruns by 30 s. */
export function runWrk(options: WrkOptions): Promise<WrkResult> {
  const args = [`-t${options.threads}`, `-c${options.connections}`, `-d${options.seconds}s`, "--latency", "-H", `Host: ${options.host}`, options.url];
  return new Promise((resolve, reject) => {
    const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    if (child.pid) options.onSpawn?.(child.pid);
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), (options.seconds + 30) * 1000);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`wrk ${args.join(" ")} exited ${code ?? signal}: ${(err || out).trim().slice(0, 500)}`));
      try {
        resolve(parseWrk(out));
      } catch (e) {
        reject(new Error(`${(e as Error).message}; wrk printed:\n${out}`));
      }
    });
  });
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function duration(value: string, unit: string): number {
  const factor = UNIT_MS[unit];
  if (factor === undefined) throw new Error(`unknown unit ${unit}`);
  return Number(value) * factor;
}

export function parseWrk(text: string): WrkResult {
  const percentile = (p: number): number => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(text);
    if (!m) throw new Error(`no ${p}% line in wrk's latency distribution`);
    return duration(m[1]!, m[2]!);
  };
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(text);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!total || !rps) throw new Error("no request count in wrk's output");
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requests: Number(total[1]),
    seconds: duration(total[2]!, total[3]!) / 1000,
    rps: Number(rps[1]),
    p50: percentile(50),
    p75: percentile(75),
    p90: percentile(90),
    p99: percentile(99),
    socketErrors: errors ? errors.slice(1).reduce((a, n) => a + Number(n), 0) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
  };
}
