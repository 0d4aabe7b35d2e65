/**
 * Proxy throughput and added latency: Pith's proxy (createProxyServer in its own node process)
 * against HAProxy 2.6 and nginx, all in front of the same native loopback backend, loaded by the
 * same wrk command; the backend alone is the baseline.
 *
 *   npx tsx bench/proxy/run.ts [--duration 10] [--runs 3] [--connections 32] [--light 5]
 *                              [--warmup 3] [--profile] [--json]
 *
 * Each run measures every contender once (the order rotates from run to run) with
 * `wrk -t1 -c32 -d10s --latency -H "Host: bench.test"`, then, unless --light 0, once more at one
 * connection (-c1) for the per-request latency without queueing. Two references without a
 * target say where Pith's time goes: node-bare (the textbook node HTTP proxy) and node-tcp (node's
 * TCP pass-through, no HTTP). Targets: Pith at least half of HAProxy's requests/s, and under 1 ms
 * added (Pith p50 minus the backend's own) at p50. pith-haproxy is `pith proxy --engine haproxy`:
 * HAProxy (nbthread 1) as the data path, configured and driven by Pith, Pith's node proxy behind it.
 * Every process is started here and killed on exit, error or Ctrl-C. See bench/README.md.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { median, table } from "../control-plane/stats.ts";
import {
  BENCH_HOST,
  cpuSeconds,
  killAllSync,
  type Running,
  startBackend,
  startHaproxy,
  startNginx,
  startNodeBare,
  startNodeTcp,
  startPith,
  startPithBaseline,
  startPithHaproxy,
  track,
  untrack,
} from "./contenders.ts";
import type { ProxyProfile } from "./profile.ts";
import { runWrk, type WrkResult } from "./wrk.ts";
import { cleanupOnExit } from "../bench-process.ts";

const { values: flags } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    runs: { type: "string", default: "3" },
    connections: { type: "string", default: "32" },
    light: { type: "string", default: "5" },
    warmup: { type: "string", default: "3" },
    profile: { type: "boolean", default: false },
    baseline: { type: "string" },
    only: { type: "string" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  process.stdout.write(
    "usage: npx tsx bench/proxy/run.ts [--duration S (10)] [--runs N (3)] [--connections C (32)] [--light S (5; 0 = no -c1 phase)] [--warmup S (3)] [--profile] [--baseline DIR] [--json]\n" +
      "  --baseline DIR: also measure Pith's proxy from another checkout of Pith (e.g. `git worktree add /tmp/base <commit>`), as contender pith-base\n",
  );
  process.exit(0);
}
const wholeNumber = (name: string, text: string, min: number): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) fatal(`--${name} must be a whole number >= ${min}, got ${text}`);
  return n;
};
const DURATION = wholeNumber("duration", flags.duration, 1);
const RUNS = wholeNumber("runs", flags.runs, 1);
const CONNECTIONS = wholeNumber("connections", flags.connections, 1);
const LIGHT = wholeNumber("light", flags.light, 0);
const WARMUP = wholeNumber("warmup", flags.warmup, 0);

const TARGET_THROUGHPUT = 0.5; // of HAProxy's requests/s
const TARGET_ADDED_P50_MS = 1;

type Name = "direct" | "pith" | "pith-haproxy" | "pith-base" | "haproxy" | "nginx" | "node-bare" | "node-tcp";
/** node-bare and node-tcp are references for the findings (what node costs), not held to a target; pith-base (--baseline) is an earlier Pith. */
const ALL_PROXIES: Exclude<Name, "direct">[] = ["pith", "pith-haproxy", ...(flags.baseline ? (["pith-base"] as const) : []), "haproxy", "nginx", "node-bare", "node-tcp"];
/** --only: a subset for quick interleaved comparisons; pith and haproxy (the target's two sides) are always measured. */
const ONLY = flags.only === undefined ? undefined : new Set(["pith", "haproxy", ...flags.only.split(",").map((name) => name.trim())]);
if (ONLY) for (const name of ONLY) if (!(ALL_PROXIES as string[]).includes(name)) fatal(`--only: no contender ${name} (one of ${ALL_PROXIES.join(", ")})`);
const PROXIES = ONLY ? ALL_PROXIES.filter((name) => ONLY.has(name)) : ALL_PROXIES;
const CONTENDERS: Name[] = [...PROXIES, "direct"];

const log = (line: string): void => void process.stderr.write(`${line}\n`);

function fatal(message: string): never {
  log(`bench/proxy: ${message}`);
  process.exit(2);
}

// ---- cleanup: every process and the temp dir, even on Ctrl-C or a crash ----

const work = mkdtempSync(join(tmpdir(), "pith-bench-proxy-"));
function cleanupSync(): void {
  killAllSync();
  rmSync(work, { recursive: true, force: true });
}
cleanupOnExit(cleanupSync, `killing the benchmark's processes and removing ${work}`, log);
const phases = 1 + (LIGHT > 0 ? 1 : 0);
const TOTAL_LIMIT_S = CONTENDERS.length * (WARMUP + 5 + RUNS * phases * (DURATION + 5)) + (flags.profile ? DURATION + 30 : 0) + 180;
const watchdog = setTimeout(() => {
  log(`bench/proxy: the whole benchmark took over ${TOTAL_LIMIT_S} s: giving up`);
  cleanupSync();
  process.exit(3);
}, TOTAL_LIMIT_S * 1000);
watchdog.unref();

// ---- tools ----

/** haproxy, nginx and wrk from Debian, installed if missing (as root). */
function ensureTools(): { haproxy: string; nginx: string; wrk: string } {
  const missing = ["haproxy", "nginx", "wrk"].filter((tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);
  if (missing.length > 0) {
    if (process.getuid?.() !== 0) fatal(`missing ${missing.join(", ")}: apt-get install -y haproxy nginx wrk`);
    log(`installing ${missing.join(", ")} from Debian (apt-get install -y haproxy nginx wrk)`);
    const install = () =>
      spawnSync("apt-get", ["install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "haproxy", "nginx", "wrk"], {
        stdio: ["ignore", "inherit", "inherit"],
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      }).status;
    if (install() !== 0) {
      spawnSync("apt-get", ["update", "-q", "-o", "DPkg::Lock::Timeout=300"], { stdio: ["ignore", "inherit", "inherit"] });
      if (install() !== 0) fatal("apt-get install -y haproxy nginx wrk failed");
    }
  }
  const firstLine = (cmd: string, args: string[]): string => {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    return `${r.stdout}${r.stderr}`.split("\n")[0]?.trim() ?? cmd;
  };
  return {
    haproxy: firstLine("haproxy", ["-v"]).replace(/ - https:.*/, ""),
    nginx: firstLine("nginx", ["-v"]).replace(/^nginx version: /, ""),
    wrk: firstLine("wrk", ["-v"]).replace(/ \[.*$/, ""),
  };
}

// ---- measuring ----

interface Sample extends WrkResult {
  contender: Name;
  phase: "load" | "light";
  run: number;
  /** CPU seconds of the contender's processes over the wrk run, per second: cores used. */
  cores: number;
  /** The same for the backend. */
  backendCores: number;
  load1: number;
}

let wrkPid: number | undefined;

async function measure(target: Running, backend: Running, connections: number, seconds: number): Promise<{ result: WrkResult; cores: number; backendCores: number }> {
  const own = target.name === "backend" ? undefined : target.pid;
  const before = { own: own ? cpuSeconds(own) : 0, backend: cpuSeconds(backend.pid), at: performance.now() };
  const result = await runWrk({
    url: `http://127.0.0.1:${target.port}/`,
    host: BENCH_HOST,
    connections,
    threads: 1,
    seconds,
    onSpawn: (pid) => {
      wrkPid = pid;
      track(pid);
    },
  }).finally(() => {
    if (wrkPid) untrack(wrkPid);
  });
  const elapsed = (performance.now() - before.at) / 1000;
  const cores = own ? (cpuSeconds(own) - before.own) / elapsed : 0;
  const backendCores = (cpuSeconds(backend.pid) - before.backend) / elapsed;
  return { result, cores, backendCores };
}

/** One unmeasured V8 CPU profile of the Pith proxy process under the same load. */
async function profilePith(pith: Running, backend: Running): Promise<ProxyProfile> {
  const child = pith.proc.child;
  const reply = <T>(key: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const onMessage = (m: Record<string, unknown>) => {
        if (m.error) reject(new Error(String(m.error)));
        else if (key in m) resolve(m[key] as T);
        else return;
        child.off("message", onMessage);
      };
      child.on("message", onMessage);
    });
  const started = reply<boolean>("profiling");
  child.send({ profile: "start" });
  await started;
  await measure(pith, backend, CONNECTIONS, DURATION);
  const file = "/tmp/pith-bench-proxy.cpuprofile";
  const done = reply<ProxyProfile>("profiled");
  child.send({ profile: "stop", file });
  return done;
}

// ---- main ----

async function main(): Promise<void> {
  const versions = ensureTools();
  const gcc = execFileSync("gcc", ["--version"], { encoding: "utf8" }).split("\n")[0] ?? "gcc";
  log(`work dir ${work}; compiling and starting the backend`);
  const backend = await startBackend(work);
  const measured = (name: Name): boolean => PROXIES.includes(name as Exclude<Name, "direct">);
  const running: Partial<Record<Name, Running>> & Record<"direct" | "pith" | "haproxy", Running> = {
    direct: backend,
    pith: await startPith(backend.port),
    ...(measured("pith-haproxy") ? { "pith-haproxy": await startPithHaproxy(backend.port) } : {}),
    ...(flags.baseline ? { "pith-base": await startPithBaseline(backend.port, resolve(flags.baseline)) } : {}),
    haproxy: await startHaproxy(work, backend.port),
    ...(measured("nginx") ? { nginx: await startNginx(work, backend.port) } : {}),
    ...(measured("node-bare") ? { "node-bare": await startNodeBare(backend.port) } : {}),
    ...(measured("node-tcp") ? { "node-tcp": await startNodeTcp(backend.port) } : {}),
  };
  const contender = (name: Name): Running => running[name] ?? fatal(`no contender ${name}`);
  log(`backend :${backend.port}, ${PROXIES.map((name) => `${name} :${contender(name).port}`).join(", ")}`);

  if (WARMUP > 0) {
    for (const name of CONTENDERS) {
      const { result } = await measure(contender(name), backend, CONNECTIONS, WARMUP);
      log(`warm-up  ${name.padEnd(8)} ${Math.round(result.rps)} req/s`);
    }
  }

  const samples: Sample[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const order = CONTENDERS.map((_, i) => CONTENDERS[(i + run - 1) % CONTENDERS.length]!);
    for (const phase of LIGHT > 0 ? (["load", "light"] as const) : (["load"] as const)) {
      for (const name of order) {
        const load1 = Math.round(loadavg()[0]! * 100) / 100;
        const connections = phase === "load" ? CONNECTIONS : 1;
        const { result, cores, backendCores } = await measure(contender(name), backend, connections, phase === "load" ? DURATION : LIGHT);
        samples.push({ ...result, contender: name, phase, run, cores, backendCores, load1 });
        const errors = result.socketErrors + result.non2xx > 0 ? `  ERRORS: ${result.socketErrors} socket, ${result.non2xx} non-2xx` : "";
        log(
          `run ${run}/${RUNS} ${phase === "load" ? `-c${CONNECTIONS}` : "-c1 "} ${name.padEnd(8)} ${String(Math.round(result.rps)).padStart(7)} req/s  p50 ${result.p50.toFixed(3)} ms  p99 ${result.p99.toFixed(3)} ms  cpu ${cores.toFixed(2)} (backend ${backendCores.toFixed(2)})  load ${load1}${errors}`,
        );
      }
    }
  }

  let profile: ProxyProfile | undefined;
  if (flags.profile) {
    log(`profiling the Pith proxy for ${DURATION} s (unmeasured) ...`);
    profile = await profilePith(running.pith, backend);
  }

  for (const name of PROXIES) await contender(name).stop();
  await backend.stop();

  const summary = summarize(samples, versions, gcc, profile);
  process.stdout.write(flags.json ? `${JSON.stringify({ ...summary, samples }, null, 2)}\n` : format(summary));
}

// ---- summary ----

interface Row {
  contender: Name;
  rps: number;
  p50: number;
  p99: number;
  addedP50: number;
  addedP99: number;
  rpsVsHaproxy: number;
  cores: number;
  /** CPU time of the contender per request, in microseconds (cores / req/s). */
  cpuUsPerRequest: number;
  backendCores: number;
  errors: number;
  every: number[];
}

function rows(samples: Sample[], phase: Sample["phase"]): Row[] {
  const of = (name: Name) => samples.filter((s) => s.phase === phase && s.contender === name);
  const med = (name: Name, key: "rps" | "p50" | "p99" | "cores" | "backendCores") => median(of(name).map((s) => s[key]));
  return CONTENDERS.filter((name) => of(name).length > 0).map((name) => ({
    contender: name,
    rps: med(name, "rps"),
    p50: med(name, "p50"),
    p99: med(name, "p99"),
    addedP50: med(name, "p50") - med("direct", "p50"),
    addedP99: med(name, "p99") - med("direct", "p99"),
    rpsVsHaproxy: med(name, "rps") / med("haproxy", "rps"),
    cores: med(name, "cores"),
    cpuUsPerRequest: median(of(name).map((s) => (s.cores / s.rps) * 1e6)),
    backendCores: med(name, "backendCores"),
    errors: of(name).reduce((a, s) => a + s.socketErrors + s.non2xx, 0),
    every: of(name).map((s) => Math.round(s.rps)),
  }));
}

function summarize(samples: Sample[], versions: ReturnType<typeof ensureTools>, gcc: string, profile: ProxyProfile | undefined) {
  const load = rows(samples, "load");
  const light = LIGHT > 0 ? rows(samples, "light") : undefined;
  const pith = load.find((r) => r.contender === "pith")!;
  const loads = samples.map((s) => s.load1);
  return {
    date: new Date().toISOString(),
    host: { cpus: cpus().length, cpu: cpus()[0]?.model ?? "", node: process.version, ...versions, gcc },
    settings: { runs: RUNS, duration: DURATION, connections: CONNECTIONS, light: LIGHT, warmup: WARMUP },
    hostLoad: { min: Math.min(...loads), max: Math.max(...loads) },
    load,
    light,
    targets: {
      throughput: { ratio: pith.rpsVsHaproxy, target: TARGET_THROUGHPUT, pass: pith.rpsVsHaproxy >= TARGET_THROUGHPUT },
      addedP50: { ms: pith.addedP50, target: TARGET_ADDED_P50_MS, pass: pith.addedP50 < TARGET_ADDED_P50_MS },
      ...(light ? { addedP50Light: { ms: light.find((r) => r.contender === "pith")!.addedP50, target: TARGET_ADDED_P50_MS } } : {}),
      haproxyEngine: (() => {
        const r = load.find((x) => x.contender === "pith-haproxy");
        return r && { ratio: r.rpsVsHaproxy, vsPith: r.rps / pith.rps, addedP50: r.addedP50, pass: r.rpsVsHaproxy >= TARGET_THROUGHPUT };
      })(),
    },
    profile,
  };
}

function format(s: ReturnType<typeof summarize>): string {
  const out: string[] = [];
  const f = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : "n/a");
  const verdict = (pass: boolean) => (pass ? "PASS" : "MISS");
  out.push(`proxy: ${s.date}, ${s.host.cpus} cores (${s.host.cpu}), node ${s.host.node}`);
  out.push(`contenders: pith (createProxyServer, one node process), pith-haproxy (pith's HAProxy engine: HAProxy nbthread 1 driven by Pith, its node fallback idle), ${s.host.haproxy} (nbthread 1), nginx ${s.host.nginx} (worker_processes 1), direct = the backend alone`);
  out.push("references (no target): node-bare = the textbook node proxy (http.createServer + http.request on a keep-alive Agent + pipe);");
  out.push("  node-tcp = node's TCP pass-through (a backend connection per client connection, socket.pipe both ways, no HTTP, no routing)");
  out.push(`backend: bench/proxy/backend.c (${s.host.gcc}, -O2), one thread, epoll, keep-alive, "ok"`);
  out.push(
    `load: ${s.host.wrk}, -t1 -c${s.settings.connections} -d${s.settings.duration}s --latency -H "Host: ${BENCH_HOST}", ${s.settings.runs} runs, contenders interleaved (order rotated per run), after a ${s.settings.warmup} s warm-up each; medians over runs`,
  );
  out.push(`host load (1-min average) at each measurement: ${f(s.hostLoad.min, 1)} to ${f(s.hostLoad.max, 1)}; nothing is pinned: wrk, backend and proxy share the 2 cores`);
  const section = (title: string, rs: Row[]) => {
    out.push("");
    out.push(title);
    out.push(
      table(
        ["contender", "req/s", "vs haproxy", "p50 ms", "p99 ms", "added p50", "added p99", "cpu cores", "cpu us/req", "backend cores", "errors", "req/s per run"],
        rs.map((r) => [
          r.contender,
          String(Math.round(r.rps)),
          `${f(r.rpsVsHaproxy)}x`,
          f(r.p50, 3),
          f(r.p99, 3),
          r.contender === "direct" ? "-" : f(r.addedP50, 3),
          r.contender === "direct" ? "-" : f(r.addedP99, 3),
          r.contender === "direct" ? "-" : f(r.cores),
          r.contender === "direct" ? "-" : f(r.cpuUsPerRequest, 1),
          f(r.backendCores),
          String(r.errors),
          r.every.join(" "),
        ]),
      ),
    );
  };
  section(`under load: -c${s.settings.connections} (closed loop, so latency includes queueing at the slowest stage)`, s.load);
  if (s.light) section("one connection: -c1 (one request at a time: each stage's own per-request time)", s.light);
  out.push("");
  out.push("targets:");
  const t = s.targets;
  out.push(`  throughput  pith/haproxy req/s = ${f(t.throughput.ratio)}x, target >= ${t.throughput.target}x   ${verdict(t.throughput.pass)}`);
  out.push(`  latency     pith added p50 at -c${s.settings.connections} = ${f(t.addedP50.ms, 3)} ms, target < ${t.addedP50.target} ms   ${verdict(t.addedP50.pass)}`);
  if (t.addedP50Light) out.push(`              (at -c1, for reference: pith added p50 = ${f(t.addedP50Light.ms, 3)} ms)`);
  const h = t.haproxyEngine;
  if (h) out.push(`  pith-haproxy (pith proxy --engine haproxy): ${f(h.ratio)}x of haproxy req/s (${verdict(h.pass)}), ${f(h.vsPith)}x of pith's node engine, added p50 ${f(h.addedP50, 3)} ms`);
  const row = (name: Name) => s.load.find((r) => r.contender === name);
  const [pith, bare, tcp, haproxy] = [row("pith")!, row("node-bare"), row("node-tcp"), row("haproxy")!];
  out.push("");
  const perRequest = s.load.filter((r) => r.contender !== "direct").map((r) => `${r.contender} ${f(r.cpuUsPerRequest, 1)} us`);
  out.push(`CPU per request at -c${s.settings.connections} (median): ${perRequest.join(", ")}`);
  if (bare) out.push(`  pith/node-bare req/s = ${f(pith.rps / bare.rps)}x: what Pith adds on top of node's HTTP stack`);
  if (tcp) out.push(`  node-tcp/haproxy req/s = ${f(tcp.rps / haproxy.rps)}x: node's sockets without HTTP`);
  const base = s.load.find((r) => r.contender === "pith-base");
  if (base) out.push(`  pith/pith-base req/s = ${f(pith.rps / base.rps)}x (pith-base: ${f(base.rpsVsHaproxy)}x of haproxy, ${f(base.cpuUsPerRequest, 1)} us per request)`);
  if (s.profile) {
    const p = s.profile;
    out.push("");
    out.push(`CPU profile of the pith proxy process, one unmeasured -c${s.settings.connections} run (${p.file}): ${p.busyMs} ms busy of ${p.totalMs} ms`);
    out.push("  by area:");
    for (const a of p.byArea.filter((a) => a.area !== "idle").slice(0, 12)) out.push(`    ${String(a.ms).padStart(6)} ms  ${pct(a.ms, p.busyMs)}  ${a.area}`);
    out.push("  top self time:");
    for (const x of p.selfTop.filter((x) => !x.fn.startsWith("(idle)")).slice(0, 15)) out.push(`    ${String(x.ms).padStart(6)} ms  ${pct(x.ms, p.busyMs)}  ${x.fn}`);
    out.push("  Pith's functions, inclusive:");
    for (const x of p.inclusiveTop.slice(0, 10)) out.push(`    ${String(x.ms).padStart(6)} ms  ${pct(x.ms, p.busyMs)}  ${x.fn}`);
  }
  return `${out.join("\n")}\n`;
}

const pct = (part: number, whole: number): string => `${((part / Math.max(1, whole)) * 100).toFixed(1).padStart(5)}%`;

main().catch((e: unknown) => {
  log(`bench/proxy failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  cleanupSync();
  process.exitCode = 1;
});
