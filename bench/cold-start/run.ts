/**
 * Cold start through the proxy against a plain boot of the same image, side by side.
 *
 *   npx tsx bench/cold-start/run.ts [--runs 5] [--warmup 1] [--json]
 *
 * Contenders (each measured once per run, order alternating from run to run):
 *
 *  - proxy-cold: a control plane, a node agent and the proxy as separate processes (as
 *    test/support/cluster.ts starts them: `pith server`, `pith agent`, `pith proxy`, PITH_ACCEL=tcg,
 *    a PITH_HOME of their own), and a Service of examples/hello-ts with min 0, max 1, hosts
 *    [hello.test], autoscale { idleSeconds: 5, cooldownSeconds: 1 }. Measured: from writing a GET
 *    (Host: hello.test) to the proxy while the service has no machine, until the response's first
 *    byte. Then the benchmark waits until the service is back at zero (no machine object, no QEMU).
 *  - plain-boot: `new QemuHypervisor({ owner: "bench" }).start(...)` of the same image, as `pith run`
 *    does: the machine's own boot-to-ready (whenReady().readyMs), and from calling start() until the
 *    first byte of a GET sent to its forwarded port once it is ready.
 *
 *  - proxy-snapshot: as proxy-cold, for a second Service of the same image with startMode
 *    snapshot (hosts [hello-snap.test]): its machines are restored from a snapshot, made by one
 *    unmeasured request before the first run.
 *  - plain-restore: MachineStarter.start(..., "snapshot") of the same image (as `pith run
 *    --snapshot`), the snapshot made beforehand: start() called -> ready -> GET -> first byte.
 *  - proxy-warm: as proxy-snapshot, for a third Service with `warm: 1` (hosts [hello-warm.test]):
 *    the agent keeps one machine restored, warmed up and paused; the request's machine takes it.
 *    Each run waits until the agent's Node reports the pool full again (status.warm).
 *
 * Targets (issue 6): proxy-snapshot's first byte at most a quarter of proxy-cold's, and under
 * 500 ms. Every wait has a
 * limit, and the cluster's processes, every QEMU of the benchmark and its temp dirs go on exit,
 * error or Ctrl-C. Skips (exit 0) when QEMU is missing. See bench/README.md.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { parseArgs } from "node:util";
import type { MachineSpec, Machine as RunningMachine } from "../../src/hypervisor/hypervisor.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles, type StoredImage } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import type { Machine } from "../../src/model/kinds.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import { execFile } from "../../src/shared/exec.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { streamProgress } from "../../src/shared/progress.ts";
import { TestCluster } from "../../test/support/cluster.ts";
import { missingForMachines } from "../../test/support/machines.ts";
import { median, sleep, table, waitUntil, withTimeout } from "../control-plane/stats.ts";
import { timedGet } from "./first-byte.ts";
import { cleanupOnExit, killProcessGroup, readFileOrEmpty } from "../bench-process.ts";
import { MachineStarter } from "../../src/snapshot/machine-starter.ts";
import { WARM_MACHINE_PREFIX } from "../../src/snapshot/warm-pool.ts";
import { spawnSync } from "node:child_process";

const { values: flags } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
    only: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  process.stdout.write("usage: npx tsx bench/cold-start/run.ts [--runs N (5)] [--warmup N (1)] [--only NAME,...] [--json]\n");
  process.exit(0);
}
const RUNS = Number(flags.runs);
const WARMUP = Number(flags.warmup);
if (!Number.isInteger(RUNS) || RUNS < 1) fatal(`--runs must be a whole number >= 1, got ${flags.runs}`);
if (!Number.isInteger(WARMUP) || WARMUP < 0) fatal(`--warmup must be a whole number >= 0, got ${flags.warmup}`);

const APP_DIR = "examples/hello-ts";
const SERVICE = "hello";
const HOST = "hello.test";
const SNAP_SERVICE = "hello-snap";
const SNAP_HOST = "hello-snap.test";
const WARM_SERVICE = "hello-warm";
const WARM_HOST = "hello-warm.test";
const NODE = "bench-cold";
const IDLE_SECONDS = 5;
/** One request (held through a boot) may take this long. */
const REQUEST_LIMIT_MS = 120_000;
/** Back at zero within this long after the response (idle 5 s, then drain and stop). */
const ZERO_LIMIT_MS = 120_000;
const TOTAL_LIMIT_MS = (5 + (RUNS + WARMUP) * 5 * 1.5) * 60_000;

process.env.PITH_ACCEL = "tcg";

const log = (line: string): void => void process.stderr.write(`${line}\n`);

function fatal(message: string): never {
  log(`bench/cold-start: ${message}`);
  process.exit(2);
}

// ---- cleanup: the cluster's processes and QEMUs, the plain boots' QEMUs, temp dirs ----

let cluster: TestCluster | undefined;
const plainStateDirs = new Set<string>();
const work = mkdtempSync(join(tmpdir(), "pith-bench-cold-"));

function cleanupSync(): void {
  // destroy() is synchronous up to its end: SIGKILL to server, agent and proxy, pkill of the
  // agent's QEMUs (named pith:agent.bench-cold/...), rm of its home.
  void cluster?.destroy();
  cluster = undefined;
  for (const dir of plainStateDirs) {
    const pid = Number(readFileOrEmpty(join(dir, "vm", "qemu.pid")).trim());
    if (pid > 0) killProcessGroup(pid);
  }
  plainStateDirs.clear();
  rmSync(work, { recursive: true, force: true });
}



cleanupOnExit(cleanupSync, `killing the benchmark's processes and machines`, log);
const watchdog = setTimeout(() => {
  log(`bench/cold-start: the whole benchmark took over ${TOTAL_LIMIT_MS / 60_000} min: giving up`);
  cleanupSync();
  process.exit(3);
}, TOTAL_LIMIT_MS);
watchdog.unref();

// ---- contenders ----

interface Sample {
  contender: string;
  run: number;
  /** The headline: request written (or start() called) until the response's first byte. */
  firstByteMs?: number;
  /** The machine's own boot-to-ready (QemuMachine's clock: launch until init's ready report). */
  readyMs?: number;
  /** Contender-specific extras (ms), shown in the per-run listing. */
  extra: Record<string, number>;
  error?: string;
  load1: number;
}

interface Setup {
  image: StoredImage;
  boot: { kernel: string; initrd: string; disk?: string };
  guestPort: number;
}

/** One way of getting a first response from the app. Add snapshot restore (issue 6) as another. */
interface Contender {
  name: string;
  describe: string;
  /** Once, before the first run. */
  prepare?(setup: Setup): Promise<void>;
  /** One measured (or warm-up) attempt; leaves nothing running. */
  measure(setup: Setup, label: string): Promise<Omit<Sample, "contender" | "run" | "load1">>;
  close?(): Promise<void>;
}

/** The one cluster both proxy contenders use: server, agent and proxy as processes. */
async function ensureCluster(): Promise<TestCluster> {
  if (cluster) return cluster;
  const t = { after: () => undefined } as unknown as TestContext;
  const c = await TestCluster.create(t);
  cluster = c;
  await c.startServer();
  await c.startAgent(NODE);
  await c.startProxy();
  return c;
}

/** A GET through the proxy to a min-0 service at zero; the service starts its machines in `startMode`. */
function proxyAtZero(name: string, service: string, host: string, startMode: "boot" | "snapshot", warm = 0): Contender {
  return {
    name,
    describe: `GET through \`pith proxy\` to a min-0 Service (startMode ${startMode}${warm ? `, warm ${warm}` : ""}) at zero (server, agent, proxy as processes), request written -> first byte`,
    async prepare(setup) {
      const c = await ensureCluster();
      await c.client().create({
        apiVersion: API_VERSION,
        kind: "Service",
        metadata: { name: service },
        spec: { image: setup.image.record.digest, min: 0, max: 1, hosts: [host], startMode, ...(warm ? { warm } : {}), autoscale: { idleSeconds: IDLE_SECONDS, cooldownSeconds: 1 } },
      });
      await sleep(1500);
      const machines = await serviceMachines(service);
      if (machines.length > 0) throw new Error(`a min-0 service started with ${machines.length} machine(s)`);
      if (startMode === "snapshot" && !warm) {
        // Not measured: the first start in snapshot mode makes the snapshot (a boot, a warm-up, a save).
        log(`${name}: making the snapshot with one unmeasured request`);
        const first = await timedGet({ port: c.proxyPort, host, timeoutMs: REQUEST_LIMIT_MS });
        if (first.status !== 200) throw new Error(`the proxy answered ${first.status}: ${first.body.slice(0, 300)}`);
      }
    },
    async measure() {
      const c = cluster!;
      const client = c.client();
      const port = c.proxyPort;
      await atZero(c, service);
      if (warm) await poolFull(c, service, warm);
      const response = await timedGet({ port, host, timeoutMs: REQUEST_LIMIT_MS });
      const answeredAt = performance.now();
      if (response.status !== 200 || !response.body.includes("greeting")) throw new Error(`the proxy answered ${response.status}: ${response.body.slice(0, 300)}`);
      const machine = (await serviceMachines(service))[0];
      if (machine && (machine.status.startedFrom ?? "boot") !== startMode) throw new Error(`machine ${machine.metadata.name} started from ${machine.status.startedFrom}, not ${startMode}`);
      const readyMs = machine?.status.timings?.readyMs;
      const extra: Record<string, number> = {};
      // Where the time went, by the wall clock (ms resolution; one host, one clock): the request until
      // the machine object exists (proxy hold, load report, autoscaler, service reconcile), until
      // the agent has written phase ready (scheduler, agent, boot or restore), until the first byte
      // (route table, proxy, the app's first answer).
      const sentWall = performance.timeOrigin + response.sentAt;
      const firstByteWall = performance.timeOrigin + response.firstByteAt;
      const createdAt = machine ? Date.parse(machine.metadata.createdAt) : Number.NaN;
      const readyAt = machine?.status.readyAt ? Date.parse(machine.status.readyAt) : Number.NaN;
      if (Number.isFinite(createdAt)) extra.requestToCreatedMs = createdAt - sentWall;
      if (Number.isFinite(createdAt) && Number.isFinite(readyAt)) extra.createdToReadyMs = readyAt - createdAt;
      if (Number.isFinite(readyAt)) extra.readyToFirstByteMs = firstByteWall - readyAt;
      if (machine?.status.timings?.restoreMs !== undefined) extra.restoreMs = machine.status.timings.restoreMs;
      // Back to zero: no request for idleSeconds, then the machine is drained, stopped and deleted.
      await waitUntil(
        async () => ((await client.list("Machine", { labels: { "pith.dev/service": service } })).items.length === 0 && machineQemuPids(c).length === 0 ? true : undefined),
        ZERO_LIMIT_MS,
        `service ${service} is back at zero machines\n${c.log()}`,
        100,
      );
      extra.backToZeroMs = performance.now() - answeredAt;
      if (readyMs !== undefined) extra.beyondReadyMs = response.firstByteMs - readyMs;
      return { firstByteMs: response.firstByteMs, ...(readyMs !== undefined ? { readyMs } : {}), extra };
    },
    async close() {
      await cluster?.destroy();
      cluster = undefined;
    },
  };
}

const proxyCold = proxyAtZero("proxy-cold", SERVICE, HOST, "boot");
const proxySnapshot = proxyAtZero("proxy-snapshot", SNAP_SERVICE, SNAP_HOST, "snapshot");
const proxyWarm = proxyAtZero("proxy-warm", WARM_SERVICE, WARM_HOST, "snapshot", 1);

const hypervisor = new QemuHypervisor({ owner: "bench" });

/**
 * A machine started straight from the hypervisor side (no control plane): `start()` called,
 * until ready, then a GET on its forwarded port, until the first byte. `start` is the way in.
 */
function plainStart(name: string, describe: string, start: (spec: MachineSpec) => Promise<RunningMachine>, startedFrom: "boot" | "snapshot"): Contender {
  return {
    name,
    describe,
    async measure(setup, label) {
      const stateDir = join(work, label);
      plainStateDirs.add(stateDir);
      const t0 = performance.now();
      let machine: RunningMachine | undefined;
      try {
        machine = await withTimeout(start({ id: `bench-${name}-${label}`, image: setup.image.record, ...setup.boot, stateDir }), REQUEST_LIMIT_MS, "start() returns");
        if (machine.startedFrom !== startedFrom) throw new Error(`the machine started from ${machine.startedFrom}, not ${startedFrom}`);
        const timings = await withTimeout(machine.whenReady(), REQUEST_LIMIT_MS, "the machine is ready");
        const readyAt = performance.now();
        const forward = machine.ports.find((p) => p.guestPort === setup.guestPort);
        if (!forward) throw new Error(`no forwarded port for ${setup.guestPort}`);
        const response = await timedGet({ port: forward.hostPort, host: HOST, timeoutMs: 30_000 });
        if (response.status !== 200 || !response.body.includes("greeting")) throw new Error(`the machine answered ${response.status}: ${response.body.slice(0, 300)}`);
        // The guest library's own account of the restore handshake (src/guest/index.ts), from the console.
        const guest = /pith-guest: restored in ([\d.]+) ms \(env ([\d.]+) ms/.exec(readFileOrEmpty(machine.consoleLog));
        return {
          firstByteMs: response.firstByteAt - t0,
          ...(timings.readyMs !== undefined ? { readyMs: timings.readyMs } : {}),
          extra: {
            ...(timings.restoreMs !== undefined ? { restoreMs: timings.restoreMs } : {}),
            startToReadyMs: readyAt - t0,
            getToFirstByteMs: response.firstByteMs,
            ...(guest ? { guestRestoredMs: Number(guest[1]), guestEnvMs: Number(guest[2]) } : {}),
            ...(timings.readyMs !== undefined && startedFrom === "boot" ? { beyondReadyMs: response.firstByteAt - t0 - timings.readyMs } : {}),
          },
        };
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${tail(join(stateDir, "console.log"))}`);
      } finally {
        if (machine) await machine.stop(1000).catch(() => undefined);
        const pid = Number(readFileOrEmpty(join(stateDir, "vm", "qemu.pid")).trim());
        if (pid > 0) killProcessGroup(pid);
        rmSync(stateDir, { recursive: true, force: true });
        plainStateDirs.delete(stateDir);
      }
    },
  };
}

const plainBoot = plainStart(
  "plain-boot",
  "QemuHypervisor.start() of the same image (as `pith run`), start() called -> ready -> GET on the forwarded port -> first byte",
  (spec) => hypervisor.start(spec),
  "boot",
);

const starter = new MachineStarter({ hypervisor, scratchDir: join(work, "snapshot-sources") });

const plainRestore: Contender = {
  ...plainStart(
    "plain-restore",
    "MachineStarter.start(..., \"snapshot\") of the same image (as `pith run --snapshot`, snapshot made beforehand), start() called -> ready -> GET -> first byte",
    (spec) => starter.start(spec, "snapshot"),
    "snapshot",
  ),
  async prepare(setup) {
    const saved = await starter.prepare({ id: "unused", image: setup.image.record, ...setup.boot, stateDir: join(work, "unused") });
    log(`plain-restore: snapshot ${saved.record.key.slice(0, 12)}, ${(saved.record.bytes / 1024 / 1024).toFixed(1)} MiB`);
  },
};

const ALL_CONTENDERS: Contender[] = [proxyCold, proxySnapshot, proxyWarm, plainBoot, plainRestore];
/** `--only a,b`: just those contenders (for a paired before/after of one of them). */
const CONTENDERS: Contender[] = selectContenders(flags.only);

function selectContenders(only: string | undefined): Contender[] {
  if (only === undefined) return ALL_CONTENDERS;
  const names = only.split(",").map((n) => n.trim()).filter((n) => n !== "");
  const unknown = names.filter((n) => !ALL_CONTENDERS.some((c) => c.name === n));
  if (names.length === 0 || unknown.length > 0) fatal(`--only takes contender names separated by commas (${ALL_CONTENDERS.map((c) => c.name).join(", ")}), got ${JSON.stringify(only)}`);
  return ALL_CONTENDERS.filter((c) => names.includes(c.name));
}

async function serviceMachines(service: string): Promise<Machine[]> {
  return (await cluster!.client().list("Machine", { labels: { "pith.dev/service": service } })).items;
}

/** The service has no machine and the agent runs no QEMU (after a warm-up or a failure). */
async function atZero(c: TestCluster, service: string): Promise<void> {
  await waitUntil(async () => ((await serviceMachines(service)).length === 0 && machineQemuPids(c).length === 0 ? true : undefined), ZERO_LIMIT_MS, `service ${service} is at zero before the request`, 100);
}

/** The agent's QEMUs other than its paused warm-pool machines (named warm-..., see src/snapshot/warm-pool.ts). */
function machineQemuPids(c: TestCluster): number[] {
  const out = spawnSync("pgrep", ["-af", `pith:agent\\.${c.node(NODE)}/`], { encoding: "utf8" }).stdout;
  return out.split("\n").filter((line) => line && !line.includes(`/${WARM_MACHINE_PREFIX}`)).map((line) => Number(line.split(" ")[0]));
}

/** The agent's Node says its pool for `service` holds `count` paused machines (made or refilled). */
async function poolFull(c: TestCluster, service: string, count: number): Promise<void> {
  const node = c.node(NODE);
  await waitUntil(async () => (((await c.client().get("Node", node))?.status.warm?.[service] ?? 0) >= count ? true : undefined), ZERO_LIMIT_MS * 3, `the warm pool of ${service} is full\n${c.log()}`, 100);
}

function tail(path: string, lines = 12): string {
  if (!existsSync(path)) return "";
  const text = readFileOrEmpty(path).trimEnd();
  return text ? `  last lines of ${path}:\n${text.split("\n").slice(-lines).map((l) => `    | ${l}`).join("\n")}` : "";
}

// ---- main ----

async function main(): Promise<void> {
  const missing = missingForMachines();
  if (missing) {
    log(`bench/cold-start: skipped: ${missing}`);
    return;
  }
  const qemu = (await execFile("qemu-system-x86_64", ["--version"])).stdout.split("\n")[0]?.replace(/^QEMU emulator version /, "QEMU ") ?? "QEMU";
  const manifest = await loadAppManifest(join(pithRoot(), APP_DIR));
  const image = await buildImage(manifest, streamProgress(`building ${manifest.name}`));
  const listen = image.record.capabilities.listen[0];
  if (!listen) throw new Error(`${manifest.name} declares no listen port`);
  const setup: Setup = { image, boot: await bootFiles(image), guestPort: listen.port };
  log(`${image.record.name} ${image.record.digest.slice(0, 19)}, ${image.record.capabilities.memoryMiB} MiB; starting server, agent (${NODE}) and proxy`);
  for (const c of CONTENDERS) await c.prepare?.(setup);

  const samples: Sample[] = [];
  for (let i = 0; i < WARMUP + RUNS; i++) {
    const measured = i >= WARMUP;
    const run = i - WARMUP + 1;
    const tag = measured ? `run ${run}/${RUNS}` : `warm-up ${i + 1}/${WARMUP}`;
    // Alternate the order, so that neither contender always follows the other's QEMU.
    const order = i % 2 === 0 ? CONTENDERS : [...CONTENDERS].reverse();
    for (const contender of order) {
      const sample: Sample = { contender: contender.name, run, extra: {}, load1: Math.round(loadavg()[0]! * 100) / 100 };
      try {
        Object.assign(sample, await contender.measure(setup, `${contender.name}-${i}`));
        const extras = Object.entries(sample.extra).map(([k, v]) => `${k} ${Math.round(v)}`).join(", ");
        log(`${tag}  ${contender.name.padEnd(10)} first byte ${Math.round(sample.firstByteMs!)} ms, readyMs ${sample.readyMs ?? "?"}${extras ? `, ${extras}` : ""}  (load ${sample.load1})`);
      } catch (e) {
        sample.error = (e as Error).message;
        log(`${tag}  ${contender.name.padEnd(10)} FAILED: ${sample.error}`);
      }
      if (measured) samples.push(sample);
    }
  }
  for (const c of CONTENDERS) await c.close?.().catch(() => undefined);

  const summary = summarize(samples, qemu, image);
  process.stdout.write(flags.json ? `${JSON.stringify({ ...summary, samples }, null, 2)}\n` : format(summary));
  if (samples.some((s) => s.error)) process.exitCode = 1;
}

// ---- summary ----

function summarize(samples: Sample[], qemu: string, image: StoredImage) {
  const ok = (name: string) => samples.filter((s) => s.contender === name && !s.error);
  const med = (name: string, pick: (s: Sample) => number | undefined) => {
    const values = ok(name).flatMap((s) => (pick(s) === undefined ? [] : [pick(s)!]));
    return values.length ? median(values) : Number.NaN;
  };
  const rows = CONTENDERS.map((c) => {
    const extras = [...new Set(ok(c.name).flatMap((s) => Object.keys(s.extra)))];
    return {
      contender: c.name,
      describe: c.describe,
      n: ok(c.name).length,
      firstByteMs: med(c.name, (s) => s.firstByteMs),
      readyMs: med(c.name, (s) => s.readyMs),
      extra: Object.fromEntries(extras.map((k) => [k, med(c.name, (s) => s.extra[k])])),
      every: samples.filter((s) => s.contender === c.name).map((s) => (s.error ? "FAIL" : String(Math.round(s.firstByteMs!)))),
    };
  });
  // Without plain-boot (--only), the ratios against it are n/a.
  const base = rows.find((r) => r.contender === plainBoot.name) ?? { firstByteMs: Number.NaN };
  const loads = samples.map((s) => s.load1);
  return {
    date: new Date().toISOString(),
    host: { cpus: cpus().length, accelerator: "tcg", qemu, node: process.version },
    app: { dir: APP_DIR, digest: image.record.digest, memoryMiB: image.record.capabilities.memoryMiB },
    runs: RUNS,
    warmup: WARMUP,
    hostLoad: { min: Math.min(...loads), max: Math.max(...loads) },
    rows: rows.map((r) => ({ ...r, vsPlain: r.firstByteMs / base.firstByteMs, minusPlainMs: r.firstByteMs - base.firstByteMs })),
    /** Median over runs of proxy-cold's beyondReadyMs minus plain-boot's: the cold path's own cost. */
    coldPathMs: pairedBeyondReady(samples),
    failures: samples.filter((s) => s.error).map((s) => `${s.contender} run ${s.run}: ${s.error!.split("\n")[0]}`),
  };
}

function format(s: ReturnType<typeof summarize>): string {
  const ms = (v: number) => (Number.isFinite(v) ? `${Math.round(v)} ms` : "n/a");
  const out: string[] = [];
  out.push(`cold start: ${s.date}, ${s.host.cpus} cores, ${s.host.qemu} TCG, ${s.app.dir} (${s.app.memoryMiB} MiB), ${s.runs} measured runs after ${s.warmup} warm-up, contenders alternating`);
  out.push(`host load (1-min average) at each measurement: ${s.hostLoad.min.toFixed(1)} to ${s.hostLoad.max.toFixed(1)}`);
  for (const r of s.rows) out.push(`  ${r.contender}: ${r.describe}`);
  out.push("");
  out.push(
    table(
      ["contender", "first byte (median)", "vs plain-boot", "minus plain-boot", "machine readyMs (median)", "ok/runs", "first byte per run"],
      s.rows.map((r) => [r.contender, ms(r.firstByteMs), `${r.vsPlain.toFixed(2)}x`, ms(r.minusPlainMs), ms(r.readyMs), `${r.n}/${s.runs}`, r.every.join(" ")]),
    ),
  );
  out.push("");
  out.push("medians of the extras:");
  for (const r of s.rows) {
    const extras = Object.entries(r.extra).map(([k, v]) => `${k} ${ms(v)}`);
    if (extras.length) out.push(`  ${r.contender}: ${extras.join(", ")}`);
  }
  const cold = s.rows.find((r) => r.contender === proxyCold.name);
  if (cold) {
    const sign = cold.minusPlainMs >= 0 ? "+" : "";
    out.push(`\ncold-start/plain (first byte, ratio of medians): ${cold.vsPlain.toFixed(2)}x (${sign}${ms(cold.minusPlainMs)})`);
  }
  const snap = s.rows.find((r) => r.contender === proxySnapshot.name);
  if (cold && snap) {
    const ratio = snap.firstByteMs / cold.firstByteMs;
    const verdict = (ok: boolean): string => (ok ? "PASS" : "MISS");
    out.push(`snapshot/cold (proxy, first byte, ratio of medians): ${ratio.toFixed(2)}x (${ms(snap.firstByteMs)} vs ${ms(cold.firstByteMs)}): target <= 0.25x ${verdict(ratio <= 0.25)}; target < 500 ms ${verdict(snap.firstByteMs < 500)}`);
  }
  const warmRow = s.rows.find((r) => r.contender === proxyWarm.name);
  if (warmRow && snap) {
    const verdict = (ok: boolean): string => (ok ? "PASS" : "MISS");
    out.push(`warm/snapshot (proxy, first byte, ratio of medians): ${(warmRow.firstByteMs / snap.firstByteMs).toFixed(2)}x (${ms(warmRow.firstByteMs)} vs ${ms(snap.firstByteMs)}): target warm < 50 ms ${verdict(warmRow.firstByteMs < 50)}; target snapshot < 250 ms ${verdict(snap.firstByteMs < 250)}`);
  }
  if (warmRow && !snap) out.push(`warm (proxy, first byte, median): ${ms(warmRow.firstByteMs)}: target < 50 ms ${warmRow.firstByteMs < 50 ? "PASS" : "MISS"}`);
  if (s.coldPathMs !== undefined) out.push(`the cold path's own cost, median over runs of (proxy-cold beyondReadyMs - plain-boot beyondReadyMs): ${ms(s.coldPathMs)}`);
  out.push("beyondReadyMs = first byte minus the machine's own readyMs: for proxy-cold the control plane, agent, route table and proxy");
  out.push("plus the app's first answer; for plain-boot the QEMU launch before the machine's clock starts plus the app's first answer.");
  if (s.failures.length) {
    out.push("");
    out.push(`FAILED (${s.failures.length}):`);
    for (const f of s.failures) out.push(`  ${f}`);
  }
  return `${out.join("\n")}\n`;
}

/** Per run, what the cold path spends beyond the boot that the plain boot does not; the median. */
function pairedBeyondReady(samples: Sample[]): number | undefined {
  const diffs = samples.flatMap((cold) => {
    if (cold.contender !== proxyCold.name || cold.error || cold.extra.beyondReadyMs === undefined) return [];
    const plain = samples.find((p) => p.contender === plainBoot.name && p.run === cold.run && !p.error);
    return plain?.extra.beyondReadyMs === undefined ? [] : [cold.extra.beyondReadyMs - plain.extra.beyondReadyMs];
  });
  return diffs.length ? median(diffs) : undefined;
}

main().catch((e: unknown) => {
  log(`bench/cold-start failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  cleanupSync();
  process.exitCode = 1;
});
