/**
 * Where a snapshot start's time goes, step by step, measured rather than inferred:
 *
 *   npx tsx bench/cold-start/restore-profile.ts [--runs 5] [--perf] [--app examples/hello-ts]
 *
 * Each run restores the app from its snapshot with MachineStarter (as `pith run --snapshot`)
 * and sends one GET to its forwarded port. Host-side stamps, all from this process's clock:
 * start() called, QMP connected (QEMU is up), the snapshot loaded (`query-migrate` completed),
 * `cont` sent, the guest library's console line (`pith-guest: restored in`), ready received,
 * the GET's first byte. The guest's own account of its part is read from that line.
 *
 * For QEMU's vCPU thread (the one that ran most besides the main loop) and its main loop, /proc/PID/task/TID/schedstat
 * gives the time it ran and the time it waited for a host CPU, read at `cont`, ready and the first
 * byte: a thread that ran for the whole phase was busy (translating or executing); one that ran
 * for a fraction of it waited on something (a guest timer, I/O, the host). With `--perf`,
 * `perf record --call-graph dwarf -p QEMU` from `cont` to the first byte sorts the vCPU's samples
 * into translating (tb_gen_code on the stack), running translated code (no DSO), helpers and the
 * softmmu (QEMU functions called from translated code), the host kernel (system calls, page
 * faults), and the rest. QEMU's .dynsym names the exported functions only, which is enough to
 * find tb_gen_code and cpu_exec on a stack.
 *
 * Every machine is stopped and the temp dir removed at the end or on failure. Skips when QEMU
 * (or, with --perf, perf) is missing. Report the host's load (printed per run) beside the figures.
 */
import { BenchMachines } from "./bench-machines.ts";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { QmpClient } from "../../src/hypervisor/qemu/qmp-client.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { MachineStarter } from "../../src/snapshot/machine-starter.ts";
import { missingForMachines } from "../../test/support/machines.ts";
import { median, withTimeout } from "../control-plane/stats.ts";
import { readFileOrEmpty } from "../bench-process.ts";
import { timedGet } from "./first-byte.ts";

const { values: flags } = parseArgs({
  options: { runs: { type: "string", default: "5" }, perf: { type: "boolean", default: false }, app: { type: "string", default: "examples/hello-ts" } },
});
const RUNS = Number(flags.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) {
  process.stderr.write(`--runs must be a whole number >= 1, got ${flags.runs}\n`);
  process.exit(2);
}
process.env.PITH_ACCEL = "tcg";

/** Monotonic milliseconds: the clock perf's samples are stamped with (-k CLOCK_MONOTONIC). */
const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Stamps of the current run, set by the QMP hooks below. */
let stamps: Record<string, number> = {};
/** Called once QEMU answers on QMP (before the snapshot loads): starts perf on it. */
let onQemuUp: ((runDir: string) => Promise<void>) | undefined;

// Bench-only hooks on the QMP client: when QEMU is up, when the snapshot is loaded, when `cont` goes.
const connect = QmpClient.connect.bind(QmpClient);
QmpClient.connect = async (path: string, timeoutMs?: number): Promise<QmpClient> => {
  const client = await connect(path, timeoutMs);
  stamps.qmpUp ??= now();
  if (onQemuUp) {
    const hook = onQemuUp;
    onQemuUp = undefined;
    await hook(dirname(path));
    stamps.perfAttached = now();
  }
  return client;
};
const execute = QmpClient.prototype.execute;
QmpClient.prototype.execute = async function <T>(this: QmpClient, command: string, args?: Record<string, unknown>): Promise<T> {
  if (command === "cont") stamps.contSent = now();
  const result = await (execute as (c: string, a?: Record<string, unknown>) => Promise<T>).call(this, command, args);
  if (command === "query-migrate" && (result as { status?: string }).status === "completed") stamps.loaded ??= now();
  return result;
};

interface ThreadTimes { runMs: number; waitMs: number }

function threadTimes(pid: number): Map<number, ThreadTimes> {
  const times = new Map<number, ThreadTimes>();
  for (const tid of readdirSync(`/proc/${pid}/task`).map(Number)) {
    const [run, wait] = readFileOrEmpty(`/proc/${pid}/task/${tid}/schedstat`).split(" ").map(Number);
    times.set(tid, { runMs: (run ?? 0) / 1e6, waitMs: (wait ?? 0) / 1e6 });
  }
  return times;
}

/** perf record on a running QEMU, enabled through its control fifo once it says it is attached. */
class PerfRecording {
  private constructor(private readonly child: ChildProcess, readonly dataFile: string) {}

  static async attach(pid: number, dir: string): Promise<PerfRecording> {
    const ctl = join(dir, "perf-ctl");
    const ack = join(dir, "perf-ack");
    for (const fifo of [ctl, ack]) spawnSync("mkfifo", [fifo]);
    const dataFile = join(dir, `perf-${pid}.data`);
    const child = spawn("perf", ["record", "-q", "-k", "CLOCK_MONOTONIC", "-F", "2999", "--call-graph", "dwarf,16384", "-p", String(pid), "-o", dataFile, "--control", `fifo:${ctl},${ack}`, "-D", "-1"], { stdio: ["ignore", "ignore", "inherit"] });
    // Opening the fifos blocks until perf opens its ends: off the main thread, with a bound.
    await withTimeout(new Promise<void>((resolve, reject) => {
      const helper = spawn("bash", ["-c", `exec 3>"${ctl}" 4<"${ack}"; echo enable >&3; read -t 10 reply <&4; [ "$reply" = ack ]`], { stdio: "ignore" });
      helper.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`perf did not acknowledge (exit ${code})`))));
    }), 20_000, "perf attach");
    return new PerfRecording(child, dataFile);
  }

  async stop(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.kill("SIGINT");
    await withTimeout(exited, 60_000, "perf to write its data");
  }
}

type Category = "translate" | "translated code" | "helpers/softmmu" | "host kernel" | "qemu other" | "libs";

/** The vCPU thread's samples from `perf script`, by category and phase. */
function categorise(dataFile: string, vcpuTid: number, phases: [string, number, number][]): Map<string, Map<Category, number>> {
  const script = spawnSync("perf", ["script", "-i", dataFile, "--tid", String(vcpuTid), "-F", "tid,time,ip,sym,dso"], { encoding: "utf8", maxBuffer: 1 << 30 });
  const counts = new Map<string, Map<Category, number>>(phases.map(([name]) => [name, new Map()]));
  const others = new Map<string, number>();
  for (const sample of script.stdout.split("\n\n")) {
    const lines = sample.trim().split("\n");
    const head = /^\s*\d+\s+([\d.]+):/.exec(lines[0] ?? "");
    if (!head) continue;
    const at = Number(head[1]) * 1000;
    const frames = lines.slice(1).map((l) => /^\s*[0-9a-f]+\s+(\S+)\s+\((.*)\)$/.exec(l)).filter((m): m is RegExpExecArray => m !== null).map((m) => ({ sym: m[1]!, dso: m[2]! }));
    const leaf = frames[0];
    if (!leaf) continue;
    let category: Category;
    if (frames.some((f) => /^(tb_gen_code|gen_intermediate_code|tcg_gen_code|translator_loop|tcg_optimize)/.test(f.sym))) category = "translate";
    else if (leaf.dso === "[unknown]" || leaf.dso.startsWith("//anon") || leaf.dso.startsWith("[anon")) category = "translated code";
    else if (leaf.dso.includes("kernel")) category = "host kernel";
    else if (leaf.dso.includes("qemu-system") && /^(helper_|tlb_|x86_cpu_tlb|cpu_|address_space|memory_region|flatview|io_|tcg_tb_lookup|tb_|page_)/.test(leaf.sym)) category = "helpers/softmmu";
    else if (leaf.dso.includes("qemu-system")) category = "qemu other";
    else category = "libs";
    if (category === "qemu other" || category === "libs") others.set(`${leaf.sym} (${leaf.dso.split("/").pop()})`, (others.get(`${leaf.sym} (${leaf.dso.split("/").pop()})`) ?? 0) + 1);
    const phase = phases.find(([, from, to]) => at >= from && at < to);
    if (!phase) continue;
    const of = counts.get(phase[0])!;
    of.set(category, (of.get(category) ?? 0) + 1);
  }
  const top = [...others.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
  process.stderr.write(`  vCPU's other leaves: ${top.map(([s, n]) => `${s} ${n}`).join(", ")}\n`);
  return counts;
}

async function main(): Promise<void> {
  const missing = missingForMachines() ?? (flags.perf && spawnSync("perf", ["--version"]).status !== 0 ? "needs perf (linux-perf)" : undefined);
  if (missing) return void process.stderr.write(`bench/cold-start/restore-profile: skipped: ${missing}\n`);
  const image = await buildImage(await loadAppManifest(join(pithRoot(), flags.app!)));
  const machines = new BenchMachines("pith-restore-profile-");
  const work = machines.work;
  const hypervisor = new QemuHypervisor({ owner: "bench" });
  const starter = new MachineStarter({ hypervisor, scratchDir: join(work, "sources") });
  const files = await bootFiles(image);
  const rows: Record<string, number>[] = [];
  try {
    const snapshot = await starter.prepare({ id: "profile", image: image.record, ...files, stateDir: join(work, "profile") });
    process.stderr.write(`snapshot ${snapshot.record.key.slice(0, 12)}: ${(snapshot.record.bytes / 1048576).toFixed(1)} MiB\n`);
    for (let i = 0; i < RUNS; i++) {
      stamps = {};
      let perf: PerfRecording | undefined;
      if (flags.perf) {
        onQemuUp = async (runDir) => {
          const pid = Number(readFileOrEmpty(join(runDir, "qemu.pid")).trim());
          perf = await PerfRecording.attach(pid, work);
        };
      }
      const stateDir = join(work, `run-${i}`);
      const t0 = now();
      const machine = await withTimeout(starter.start({ id: `profile-${i}`, image: image.record, ...files, stateDir }, "snapshot"), 120_000, "start");
      machines.started(machine);
      try {
        const atCont = threadTimes(machine.pid);
        const started = now();
        const timings = await withTimeout(machine.whenReady(), 120_000, "ready");
        const ready = now();
        const atReady = threadTimes(machine.pid);
        const response = await timedGet({ port: machine.ports[0]!.hostPort, host: "profile.test", timeoutMs: 30_000 });
        const firstByte = now() - (performance.now() - response.firstByteAt);
        const sent = firstByte - response.firstByteMs;
        const atByte = threadTimes(machine.pid);
        await perf?.stop();
        const console = readFileOrEmpty(machine.consoleLog);
        const guest = /pith-guest: restored in ([\d.]+) ms \(env ([\d.]+) ms/.exec(console);
        const cont = stamps.contSent ?? started;
        const row: Record<string, number> = {
          "start->qmp": (stamps.qmpUp ?? Number.NaN) - t0,
          "qmp->loaded": (stamps.loaded ?? Number.NaN) - (stamps.perfAttached ?? stamps.qmpUp ?? Number.NaN),
          "loaded->cont": cont - (stamps.loaded ?? Number.NaN),
          "cont->ready": ready - cont,
          "guest lib": guest ? Number(guest[1]) : Number.NaN,
          "ready->sent": sent - ready,
          "sent->byte": response.firstByteMs,
          restoreMs: timings.restoreMs ?? Number.NaN,
          perfAttachMs: stamps.perfAttached ? stamps.perfAttached - (stamps.qmpUp ?? 0) : 0,
          load: loadavg()[0]!,
        };
        // QEMU names its threads only with debug-threads=on: the vCPU is the other thread that ran most.
        const ranSinceCont = (tid: number): number => (atByte.get(tid)?.runMs ?? 0) - (atCont.get(tid)?.runMs ?? 0);
        const vcpuTid = [...atByte.keys()].filter((tid) => tid !== machine.pid).sort((a, b) => ranSinceCont(b) - ranSinceCont(a))[0];
        for (const [tid, after] of atByte) {
          const before = atCont.get(tid);
          const mid = atReady.get(tid);
          if (!before || !mid) continue;
          const label = tid === vcpuTid ? "vcpu" : tid === machine.pid ? "main" : undefined;
          if (!label) continue;
          row[`${label} run cont->ready`] = mid.runMs - before.runMs;
          row[`${label} wait cont->ready`] = mid.waitMs - before.waitMs;
          row[`${label} run ready->byte`] = after.runMs - mid.runMs;
          row[`${label} wait ready->byte`] = after.waitMs - mid.waitMs;
          if (perf && label === "vcpu") {
            const counts = categorise(perf.dataFile, tid, [["cont->ready", cont, ready], ["ready->byte", ready, firstByte]]);
            for (const [phase, of] of counts) {
              const total = [...of.values()].reduce((a, b) => a + b, 0);
              process.stderr.write(`  perf ${phase}: ${total} samples: ${[...of.entries()].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${((100 * n) / total).toFixed(0)}%`).join(", ")}\n`);
              for (const [c, n] of of) row[`perf ${phase} ${c} %`] = (100 * n) / total;
            }
          }
        }
        rows.push(row);
        process.stderr.write(`run ${i + 1}: ${Object.entries(row).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}\n`);
      } finally {
        await machines.done(machine, stateDir);
      }
    }
  } finally {
    await machines.close();
  }
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  process.stdout.write(`medians of ${rows.length} runs:\n`);
  for (const key of keys) process.stdout.write(`  ${key.padEnd(34)} ${median(rows.map((r) => r[key] ?? Number.NaN)).toFixed(1)}  (${rows.map((r) => (r[key] ?? Number.NaN).toFixed(0)).join(" ")})\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/cold-start/restore-profile failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
