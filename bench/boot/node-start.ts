/**
 * Node's start inside a Pith machine, variant against variant: boots one image N times per
 * variant, interleaved (a, b, c, then b, c, a, ...: round-order.ts), and prints each variant's
 * median app stage (init exec'd node until the app said ready) next to the first one's.
 *
 *   npx tsx bench/boot/node-start.ts [--runs N (5)] [--app examples/hello-ts] [--only a,b] [--profile]
 *
 * A variant changes only how node is started (its argv) and adds files: each is the image's own
 * initramfs with a small second cpio archive appended, which the kernel unpacks over the first
 * (the same files, a different /pith/argv). The image's digest is untouched; this is a
 * measurement tool, not a way to build images. With --profile, a preload prints node's own
 * phase timestamps (performance.nodeTiming) when the app says ready.
 */
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { BootTimings } from "../../src/hypervisor/hypervisor.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { overlayInitramfs } from "../../src/image/cpio/overlay-archive.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { cleanupOnExit, killProcessGroup, readFileOrEmpty } from "../bench-process.ts";
import { nodeStartVariants, type NodeStartVariant } from "./node-start-variants.ts";
import { roundOrder } from "./round-order.ts";

const { values: flags } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    app: { type: "string", default: "examples/hello-ts" },
    only: { type: "string" },
    profile: { type: "boolean", default: false },
  },
});
process.env.PITH_ACCEL = "tcg";
const log = (line: string): void => void process.stderr.write(`${line}\n`);
const stateDirs = new Set<string>();
const temp: string[] = [];
cleanupOnExit(
  () => {
    for (const dir of stateDirs) {
      const pid = Number(readFileOrEmpty(join(dir, "vm", "qemu.pid")).trim());
      if (pid > 0) killProcessGroup(pid);
    }
    for (const dir of temp) rmSync(dir, { recursive: true, force: true });
  },
  "killing the machines and removing the temp dir",
  log,
);

const PROFILE_PRELOAD = `
const fs = require("node:fs");
const write = fs.writeSync;
fs.writeSync = function (fd, data, ...rest) {
  if (fd === Number(process.env.PITH_CONTROL_FD) && String(data).startsWith("ready")) {
    const t = performance.nodeTiming;
    const up = fs.readFileSync("/proc/uptime", "utf8").split(" ")[0];
    const read = (f) => { try { return fs.readFileSync(f, "utf8").trim(); } catch { return ""; } };
    const vda = read("/sys/block/vda/stat").split(" ").filter(Boolean);
    const majfault = (read("/proc/vmstat").split(String.fromCharCode(10)).find((l) => l.startsWith("pgmajfault ")) || "").split(" ")[1];
    const self = read("/proc/self/stat").split(") ")[1]?.split(" ") || [];
    process.stderr.write("pith-node-timing " + JSON.stringify({ diskReads: vda[0], diskSectors: vda[2], diskReadMs: vda[3], majfault, nodeMajfault: self[9], nodeUtimeTicks: self[11], nodeStimeTicks: self[12], nodeStart: t.nodeStart, v8Start: t.v8Start, environment: t.environment, bootstrapComplete: t.bootstrapComplete, loopStart: t.loopStart, ready: performance.now(), uptime: up }) + "\\n");
  }
  return write.call(this, fd, data, ...rest);
};
`;

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "pith-node-start-"));
  temp.push(work);
  const manifest = await loadAppManifest(join(pithRoot(), flags.app));
  const image = await buildImage(manifest);
  const boot = await bootFiles(image);
  const all = await nodeStartVariants(image, join(pithRoot(), flags.app));
  const only = flags.only?.split(",");
  const variants = only ? all.filter((v) => only.includes(v.name)) : all;
  if (variants.length === 0) throw new Error(`no variant named ${flags.only}; have ${all.map((v) => v.name).join(", ")}`);

  const initrds = new Map<string, string>();
  for (const variant of variants) initrds.set(variant.name, await overlayInitrd(boot.initrd, variant, work));

  const hypervisor = new QemuHypervisor({ owner: "bench" });
  const appMs = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const cpu = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const runs = Number(flags.runs);
  for (let run = 0; run <= runs; run++) {
    for (const variant of roundOrder(variants, run)) {
      const stateDir = join(work, `${variant.name}-${run}`);
      stateDirs.add(stateDir);
      const load = loadavg()[0]!.toFixed(1);
      try {
        const machine = await hypervisor.start({ id: `node-start-${variant.name}-${run}`, image: image.record, ...boot, initrd: initrds.get(variant.name)!, stateDir });
        let timings: BootTimings;
        let cpuMs = NaN;
        try {
          timings = await withTimeout(machine.whenReady(), 90_000);
          cpuMs = qemuCpuMs(stateDir);
        } finally {
          await machine.stop(1000).catch(() => undefined);
        }
        const profile = flags.profile ? (await readFile(join(stateDir, "console.log"), "utf8")).split("\n").find((l) => l.includes("pith-node-timing")) : undefined;
        if (run > 0) appMs.get(variant.name)!.push(timings.appMs ?? NaN);
        if (run > 0) cpu.get(variant.name)!.push(cpuMs);
        log(`${run === 0 ? "warm-up" : `run ${run}/${runs}`} ${variant.name.padEnd(16)} app ${timings.appMs} ms ready ${timings.readyMs} ms, QEMU CPU to ready ${cpuMs} ms (load ${load})${profile ? `\n    ${profile.slice(profile.indexOf("pith-node-timing"))}` : ""}`);
      } catch (e) {
        log(`${variant.name}: FAILED ${(e as Error).message}\n${(await readFile(join(stateDir, "console.log"), "utf8").catch(() => "")).split("\n").slice(-12).join("\n")}`);
      } finally {
        await rm(stateDir, { recursive: true, force: true });
        stateDirs.delete(stateDir);
      }
    }
  }
  const base = median(appMs.get(variants[0]!.name)!);
  const baseCpu = median(cpu.get(variants[0]!.name)!);
  for (const variant of variants) {
    const m = median(appMs.get(variant.name)!);
    const c = median(cpu.get(variant.name)!);
    process.stdout.write(`${variant.name.padEnd(16)} app stage median ${Math.round(m)} ms (${(m / base).toFixed(2)}x), QEMU CPU to ready median ${Math.round(c)} ms (${(c / baseCpu).toFixed(2)}x; ${cpu.get(variant.name)!.join(", ")})  ${variant.note}\n`);
  }
}

/** The image's initramfs with this variant's argv and files over it. */
async function overlayInitrd(initrd: string, variant: NodeStartVariant, work: string): Promise<string> {
  const files = new Map(variant.files);
  if (flags.profile) files.set("/app/profile.cjs", Buffer.from(PROFILE_PRELOAD));
  const argv = flags.profile ? [variant.argv[0]!, "-r", "/app/profile.cjs", ...variant.argv.slice(1)] : variant.argv;
  files.set("/pith/argv", Buffer.from(argv.map((s) => `${s}\0`).join("")));
  const out = join(work, `${variant.name}.cpio`);
  await overlayInitramfs(initrd, files, out);
  return out;
}

/** CPU time (user + system, all threads) QEMU has used so far: steadier than wall time on a busy host. */
function qemuCpuMs(stateDir: string): number {
  const pid = Number(readFileOrEmpty(join(stateDir, "vm", "qemu.pid")).trim());
  const stat = readFileOrEmpty(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5), 11 and 12 after the command name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}
const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`not ready within ${ms} ms`)), ms).unref())]);
}

main().catch((e: unknown) => {
  log(`node-start failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exitCode = 1;
});
