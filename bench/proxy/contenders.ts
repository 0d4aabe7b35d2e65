/**
 * The proxy benchmark's processes: the native backend, and in front of it Pith's proxy, HAProxy
 * and nginx, each one process/thread doing the work (HAProxy `nbthread 1`, nginx
 * `worker_processes 1`, Pith one node process), each on its own loopback port, all started in the
 * foreground as children of the benchmark in their own process groups, so that every one of them
 * can be killed on exit, error or Ctrl-C.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { pithRoot } from "../../src/shared/paths.ts";
import { freeLoopbackPort } from "../../src/shared/free-port.ts";
import { killProcessGroup } from "../bench-process.ts";

export const BENCH_HOST = "bench.test";

/** Process groups of everything started (each child leads its own group). */
const groups = new Set<number>();

export function track(pid: number): void {
  groups.add(pid);
}

export function untrack(pid: number): void {
  groups.delete(pid);
}

export function killAllSync(): void {
  for (const pid of groups) killProcessGroup(pid);
  groups.clear();
}

export interface Proc {
  name: string;
  child: ChildProcess;
  /** The last output lines, for errors. */
  output(): string;
}

function spawnTracked(name: string, command: string, args: string[], options: { cwd?: string; ipc?: boolean } = {}): Proc {
  const child = spawn(command, args, {
    cwd: options.cwd,
    detached: true,
    stdio: options.ipc ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"],
  });
  if (child.pid) track(child.pid);
  const lines: string[] = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.setEncoding("utf8").on("data", (chunk: string) => {
      lines.push(...chunk.split("\n").filter(Boolean));
      if (lines.length > 100) lines.splice(0, lines.length - 50);
    });
  }
  child.once("exit", () => child.pid && untrack(child.pid));
  return { name, child, output: () => lines.slice(-15).join("\n") };
}

export async function stopProc(proc: Proc, signal: NodeJS.Signals = "SIGTERM", graceMs = 3000): Promise<void> {
  const { child } = proc;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    process.kill(-child.pid!, signal);
  } catch {
    child.kill(signal);
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // gone
    }
  }, graceMs);
  await exited;
  clearTimeout(timer);
}


/** GET / with Host: bench.test; resolves with status and body. */
export function get(port: number, host = BENCH_HOST): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/", headers: { host }, agent: false, timeout: 2000 }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}

/** Waits until GET / (Host bench.test) answers 200 "ok" through the contender. */
async function waitForOk(proc: Proc, port: number, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  let last = "";
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}) before answering:\n${proc.output()}`);
    }
    try {
      const r = await get(port);
      if (r.status === 200 && r.body === "ok") return;
      last = `${r.status} ${JSON.stringify(r.body.slice(0, 100))}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${proc.name} on 127.0.0.1:${port} did not answer 200 "ok" within ${limitMs} ms (last: ${last}):\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- the backend ----

export interface Running {
  name: string;
  port: number;
  proc: Proc;
  /** Processes whose CPU time counts as this contender's (its own and its children). */
  pid: number;
  stop(): Promise<void>;
}

/** Compiles backend.c (gcc -O2) into `work` and starts it on a free port. */
export async function startBackend(work: string): Promise<Running> {
  const binary = join(work, "backend");
  execFileSync("gcc", ["-O2", "-Wall", "-o", binary, join(pithRoot(), "bench/proxy/backend.c")], { stdio: ["ignore", "ignore", "pipe"] });
  const port = await freeLoopbackPort();
  const proc = spawnTracked("backend", binary, [String(port)]);
  await waitForOk(proc, port);
  return { name: "backend", port, proc, pid: proc.child.pid!, stop: () => stopProc(proc, "SIGKILL") };
}

// ---- the proxies ----

/** A TypeScript file of this directory in its own node process, run through tsx like `pith`. */
async function startNodeProxy(name: string, file: string, backendPort: number, ipc: boolean, root = pithRoot()): Promise<Running> {
  const port = await freeLoopbackPort();
  const proc = spawnTracked(
    name,
    process.execPath,
    ["--import", "tsx", join(root, "bench/proxy", file), "--port", String(port), "--backend", `http://127.0.0.1:${backendPort}`, "--host", BENCH_HOST],
    { cwd: root, ipc },
  );
  await waitForOk(proc, port, 30_000);
  return { name, port, proc, pid: proc.child.pid!, stop: () => stopProc(proc) };
}

/** Pith's createProxyServer with a static route table (pith-proxy-process.ts), with an IPC channel for profiling. */
export const startPith = (backendPort: number): Promise<Running> => startNodeProxy("pith", "pith-proxy-process.ts", backendPort, true);

/** Pith's HAProxy engine (pith-haproxy-process.ts): HAProxy nbthread 1 driven by Pith, Pith's node proxy behind it. */
export const startPithHaproxy = (backendPort: number): Promise<Running> => startNodeProxy("pith-haproxy", "pith-haproxy-process.ts", backendPort, false);

/** Pith's proxy from another checkout (`--baseline DIR`, e.g. a git worktree of an earlier commit), measured in the same runs. */
export const startPithBaseline = (backendPort: number, root: string): Promise<Running> =>
  startNodeProxy("pith-base", "pith-proxy-process.ts", backendPort, false, root);

/** The reference: a bare node reverse proxy (node-bare-proxy.ts). */
export const startNodeBare = (backendPort: number): Promise<Running> => startNodeProxy("node-bare", "node-bare-proxy.ts", backendPort, false);

/** The other reference: node's TCP pass-through, no HTTP (node-tcp-proxy.ts). */
export const startNodeTcp = (backendPort: number): Promise<Running> => startNodeProxy("node-tcp", "node-tcp-proxy.ts", backendPort, false);

export function haproxyConfig(port: number, backendPort: number): string {
  return `# bench/proxy: HAProxy on one thread, routing Host bench.test to the backend over kept-alive connections
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option forwardfor
    timeout connect 3s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend bench
    bind 127.0.0.1:${port}
    use_backend app if { req.hdr(host),field(1,:) -m str -i ${BENCH_HOST} }

backend app
    server backend 127.0.0.1:${backendPort} maxconn 256
`;
}

export async function startHaproxy(work: string, backendPort: number): Promise<Running> {
  const port = await freeLoopbackPort();
  const dir = join(work, "haproxy");
  mkdirSync(dir, { recursive: true });
  const config = join(dir, "haproxy.cfg");
  writeFileSync(config, haproxyConfig(port, backendPort));
  execFileSync("haproxy", ["-c", "-q", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
  // -db: foreground, no daemon, no master-worker; logs to stderr.
  const proc = spawnTracked("haproxy", "haproxy", ["-db", "-f", config]);
  await waitForOk(proc, port);
  return { name: "haproxy", port, proc, pid: proc.child.pid!, stop: () => stopProc(proc) };
}

export function nginxConfig(port: number, backendPort: number): string {
  return `# bench/proxy: nginx with one worker, routing Host bench.test to the backend over kept-alive connections
daemon off;
master_process on;
worker_processes 1;
pid nginx.pid;
error_log stderr warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;

    upstream app {
        server 127.0.0.1:${backendPort};
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:${port};
        server_name ${BENCH_HOST};
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
    }

    server {
        listen 127.0.0.1:${port} default_server;
        return 404;
    }
}
`;
}

export async function startNginx(work: string, backendPort: number): Promise<Running> {
  const port = await freeLoopbackPort();
  const dir = join(work, "nginx");
  mkdirSync(join(dir, "tmp"), { recursive: true });
  const config = join(dir, "nginx.conf");
  writeFileSync(config, nginxConfig(port, backendPort));
  const args = ["-p", `${dir}/`, "-c", config, "-e", "stderr"];
  execFileSync("nginx", [...args, "-t", "-q"], { stdio: ["ignore", "ignore", "pipe"] });
  const proc = spawnTracked("nginx", "nginx", args);
  await waitForOk(proc, port);
  // SIGTERM is nginx's fast shutdown; its master takes the worker with it.
  return { name: "nginx", port, proc, pid: proc.child.pid!, stop: () => stopProc(proc) };
}

// ---- CPU time ----

/** utime + stime of a process and all its descendants, in seconds (from /proc). */
export function cpuSeconds(pid: number): number {
  const ticks = (stat: string): { ppid: number; cpu: number } => {
    // The command name may contain spaces: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(fields[1]), cpu: Number(fields[11]) + Number(fields[12]) };
  };
  const all = new Map<number, { ppid: number; cpu: number }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      all.set(Number(entry), ticks(readFileSync(`/proc/${entry}/stat`, "utf8")));
    } catch {
      // exited meanwhile
    }
  }
  let total = 0;
  const stack = [pid];
  const seen = new Set<number>();
  while (stack.length) {
    const p = stack.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    total += all.get(p)?.cpu ?? 0;
    for (const [child, s] of all) if (s.ppid === p) stack.push(child);
  }
  return total / CLK_TCK;
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export { freeLoopbackPort };
