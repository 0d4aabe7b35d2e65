/**
 * Boot-to-ready: Pith images versus the same apps on Debian's generic cloud kernel with a
 * conventional busybox initramfs, under the same QEMU (TCG), side by side and interleaved: on
 * Pith's own machine (`generic`, the target's contender) and on a conventional PC (`q35`).
 *
 *   npx tsx bench/boot/run.ts [--runs N] [--warmup N] [--contenders pith,generic,q35]
 *                             [--generic-kernel linux-image-...-cloud-amd64] [--json] [--keep]
 *
 * Every contender is timed the same way: from spawning QEMU (for Pith, calling start(), which
 * spawns it) until an HTTP GET on the forwarded port returns 200. See bench/README.md.
 */
import { existsSync, rmdirSync, rmSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { BootTimings, Machine } from "../../src/hypervisor/hypervisor.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { QEMU_BINARY } from "../../src/hypervisor/qemu/qemu-machine.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles, type StoredImage } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { isPithError } from "../../src/shared/errors.ts";
import { execFile } from "../../src/shared/exec.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { streamProgress } from "../../src/shared/progress.ts";
import { buildGenericInitramfs, ensureBusybox } from "./generic-initramfs.ts";
import { ensureGenericKernel } from "./generic-kernel.ts";
import { contenderCgroup } from "./contender-cgroup.ts";
import { hostTscKhz } from "../../src/hypervisor/qemu/host-tsc.ts";
import { startGenericVm, type GenericMachine } from "./generic-vm.ts";
import { phasesFromMarks } from "./init-marks.ts";
import { roundOrder } from "./round-order.ts";
import { waitForHttp200 } from "./http-ready.ts";
import { CONTENDERS, formatSummary, summarize, type AppSetup, type Contender, type ContenderSetup, type Sample } from "./report.ts";
import { freeLoopbackPort } from "../../src/shared/free-port.ts";
import { cleanupOnExit, killProcessGroup, readFileOrEmpty } from "../bench-process.ts";

const BOOT_TIMEOUT_MS = 60_000;
/**
 * A generic VM gets the manifest's memory, or this if the manifest asks for less: Debian's cloud
 * kernel panics out of memory at 64M (static-c's); 96M boots, 128M leaves it some margin.
 */
const GENERIC_MIN_MEMORY_MIB = 128;
const STATIC_IMAGE_LIMIT_BYTES = 4_000_000;

const APPS = [
  // Issue 14: 2.5x (it was 2x).
  { dir: "examples/hello-ts", targetRatio: 2.5 },
  { dir: "examples/static-c", targetRatio: 3, make: true, staticImage: true },
];

const { values: flags } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    contenders: { type: "string", default: CONTENDERS.join(",") },
    "generic-kernel": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  process.stdout.write(
    "usage: npx tsx bench/boot/run.ts [--runs N (5)] [--warmup N (1)] [--contenders pith,generic,q35] [--generic-kernel PACKAGE (default: Debian's current cloud kernel)] [--json] [--keep (keep consoles and initramfs in a temp dir)]\n",
  );
  process.exit(0);
}
const runs = Number(flags.runs);
const warmup = Number(flags.warmup);
if (!Number.isInteger(runs) || runs < 1) fatal(`--runs must be a whole number >= 1, got ${flags.runs}`);
if (!Number.isInteger(warmup) || warmup < 0) fatal(`--warmup must be a whole number >= 0, got ${flags.warmup}`);
const contenders = flags.contenders.split(",").map((c) => c.trim()) as Contender[];
for (const c of contenders) if (!CONTENDERS.includes(c)) fatal(`--contenders: unknown contender "${c}" (have ${CONTENDERS.join(", ")})`);
if (!contenders.includes("pith") || contenders.length < 2) fatal("--contenders must include pith and at least one other");

// Like `pith run` on this host, but never spend a boot probing KVM.
process.env.PITH_ACCEL = "tcg";

const log = (line: string): void => void process.stderr.write(`${line}\n`);

// ---- cleanup: every QEMU process group started, every temp dir, even on Ctrl-C or a crash ----

const qemuGroups = new Set<number>();
const pithStateDirs = new Set<string>();
const tempDirs = new Set<string>();
const cgroupDirs = new Set<string[]>();

function cleanupSync(): void {
  for (const dir of pithStateDirs) {
    // Pith's machines write QEMU's pid here; QEMU runs in its own process group.
    const pid = Number(readFileOrEmpty(join(dir, "vm", "qemu.pid")).trim());
    if (pid > 0) qemuGroups.add(pid);
  }
  for (const pid of qemuGroups) killProcessGroup(pid);
  qemuGroups.clear();
  // Best effort: a cgroup whose QEMU is still being reaped stays, and Pith's own sweep removes it.
  for (const dirs of cgroupDirs) {
    for (const dir of dirs) {
      try {
        rmdirSync(dir);
      } catch {
        // Busy or gone.
      }
    }
  }
  cgroupDirs.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}



cleanupOnExit(cleanupSync, `killing the benchmark's machines and removing its files`, log);

// ---- setup ----

interface GenericBoot {
  kernel: string;
  initrd: string;
  memoryMiB: number;
}

interface PreparedApp {
  setup: AppSetup;
  image: StoredImage;
  pithBoot: { kernel: string; initrd: string; disk?: string };
  generic: Partial<Record<GenericMachine, GenericBoot>>;
  guestPort: number;
  vcpus: number;
}

async function prepare(work: string): Promise<{ apps: PreparedApp[]; qemu: string; genericKernel: string }> {
  const genericKernel = await ensureGenericKernel(log, flags["generic-kernel"]);
  const busybox = await ensureBusybox(log);
  const qemu = (await execFile(QEMU_BINARY, ["--version"])).stdout.split("\n")[0]?.replace(/^QEMU emulator version /, "QEMU ") ?? "QEMU";
  const machines = contenders.flatMap((c) => (c === "pith" ? [] : [machineOf(c)]));

  const apps: PreparedApp[] = [];
  for (const app of APPS) {
    const dir = join(pithRoot(), app.dir);
    if (app.make) await execFile("make", ["-s", "-C", dir], { code: "BENCH_MAKE" });
    const manifest = await loadAppManifest(dir);
    const image = await buildImage(manifest, streamProgress(`building ${manifest.name}`));
    const pithBoot = await bootFiles(image);
    const record = image.record;
    const listen = record.capabilities.listen[0];
    if (!listen) throw new Error(`${manifest.name} declares no listen port: nothing to measure readiness on`);

    const pithMemory = record.capabilities.memoryMiB;
    const genericMemory = Math.max(pithMemory, GENERIC_MIN_MEMORY_MIB);
    const setups: Partial<Record<Contender, ContenderSetup>> = {
      pith: { memoryMiB: pithMemory, kernelBytes: (await stat(pithBoot.kernel)).size, initrdBytes: (await stat(pithBoot.initrd)).size },
    };
    const generic: PreparedApp["generic"] = {};
    for (const machine of machines) {
      log(`${record.name}: building the ${machine} VM's initramfs (busybox, modules, the image's own files)`);
      const initrd = join(work, `${record.name}-${machine}.cpio`);
      const initramfs = await buildGenericInitramfs({ record, pithInitrd: pithBoot.initrd, disk: pithBoot.disk !== undefined, machine, kernel: genericKernel, busybox, work: join(work, `${record.name}-stage`), out: initrd });
      // microvm boots the ELF through its PVH entry, as Pith's; q35's boot loader takes the bzImage.
      const kernel = machine === "microvm" ? genericKernel.vmlinux : genericKernel.vmlinuz;
      generic[machine] = { kernel, initrd, memoryMiB: genericMemory };
      setups[contenderOf(machine)] = {
        memoryMiB: genericMemory,
        ...(genericMemory !== pithMemory
          ? { memoryNote: `gets ${genericMemory}M, not the manifest's ${pithMemory}M (the cloud kernel runs out of memory at 64M; 96M boots); Pith boots with ${pithMemory}M` }
          : {}),
        kernelBytes: (await stat(kernel)).size,
        initrdBytes: initramfs.bytes,
        modules: initramfs.modules,
      };
    }
    apps.push({
      image,
      pithBoot,
      generic,
      guestPort: listen.port,
      vcpus: record.capabilities.vcpus,
      setup: { name: record.name, targetRatio: app.targetRatio, storedBytes: image.storedBytes, digest: record.digest, contenders: setups },
    });
  }
  return { apps, qemu, genericKernel: `${genericKernel.packageName} ${genericKernel.packageVersion}` };
}

/** The contender a generic machine is reported as. */
const contenderOf = (machine: GenericMachine): Contender => (machine === "microvm" ? "generic" : "q35");
const machineOf = (contender: Exclude<Contender, "pith">): GenericMachine => (contender === "generic" ? "microvm" : "q35");

// ---- one boot of each contender ----

const hypervisor = new QemuHypervisor({ owner: "bench" });

async function bootPith(app: PreparedApp, work: string, label: string): Promise<{ readyMs: number; timings?: BootTimings }> {
  const stateDir = join(work, label);
  pithStateDirs.add(stateDir);
  const hostPort = await freeLoopbackPort();
  const t0 = performance.now();
  const starting = hypervisor.start({
    id: `bench-${label}`,
    image: app.image.record,
    ...app.pithBoot,
    stateDir,
    hostPorts: { [app.guestPort]: hostPort },
  });
  starting.catch(() => {});
  let machine: Machine | undefined;
  try {
    const abandon = starting.then(
      (m) => m.whenExited().then((e) => e.reason),
      (e: Error) => `start() failed: ${e.message}`,
    );
    const readyAt = await waitForHttp200({ port: hostPort, timeoutMs: BOOT_TIMEOUT_MS, abandon });
    machine = await starting;
    // The guest's "ready" and the first 200 arrive at about the same time; wait a little for it.
    const timings = await Promise.race([machine.whenReady().catch(() => undefined), delay(5000)]);
    return { readyMs: readyAt - t0, ...(timings ? { timings } : {}) };
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await tail(join(stateDir, "console.log"))}`);
  } finally {
    machine ??= await Promise.race([starting.catch(() => undefined), delay(0)]);
    if (machine) await machine.stop(1000).catch(() => {});
    else {
      // start() has not returned (the boot timed out before init reported): kill QEMU by the
      // pid it wrote, and stop the machine should start() still return it.
      const pid = Number((await readFile(join(stateDir, "vm", "qemu.pid"), "utf8").catch(() => "")).trim());
      if (pid > 0) killProcessGroup(pid);
      void starting.then((m) => m.stop(0), () => {});
    }
    if (!flags.keep) await rm(stateDir, { recursive: true, force: true });
    pithStateDirs.delete(stateDir);
  }
}

async function bootGeneric(app: PreparedApp, machine: GenericMachine, work: string, label: string): Promise<{ readyMs: number; timings?: BootTimings }> {
  const boot = app.generic[machine];
  if (!boot) throw new Error(`no ${machine} boot files prepared for ${app.setup.name}`);
  const hostPort = await freeLoopbackPort();
  const serialLog = join(work, `${label}.serial`);
  const qemuLog = join(work, `${label}.qemu.log`);
  const cgroup = await contenderCgroup(`bench-${label}.${process.pid}`, { memoryMiB: boot.memoryMiB, vcpus: app.vcpus });
  if (cgroup) cgroupDirs.add(cgroup.dirs);
  const tscKhz = await hostTscKhz();
  const t0 = performance.now();
  const vm = startGenericVm({
    machine,
    ...(cgroup ? { cgroupDirs: cgroup.dirs } : {}),
    ...boot,
    ...(app.pithBoot.disk ? { disk: app.pithBoot.disk } : {}),
    vcpus: app.vcpus,
    tscKhz,
    hostPort,
    guestPort: app.guestPort,
    qemuLog,
  });
  if (vm.pid > 0) qemuGroups.add(vm.pid);
  try {
    const readyAt = await waitForHttp200({ port: hostPort, timeoutMs: BOOT_TIMEOUT_MS, abandon: vm.exited });
    const timings = phasesFromMarks(vm.marks, t0, readyAt);
    return { readyMs: readyAt - t0, ...(timings ? { timings } : {}) };
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${consoleTail(vm.tail)}${await tail(qemuLog, 3)}`);
  } finally {
    await vm.kill();
    qemuGroups.delete(vm.pid);
    if (cgroup) {
      await cgroup.remove().catch((e: Error) => log(`cannot remove the ${label} cgroup: ${e.message}`));
      cgroupDirs.delete(cgroup.dirs);
    }
    if (flags.keep) await writeFile(serialLog, [...[...vm.marks].map(([name, m]) => `${name} arrived at ${Math.round(m.at - t0)} ms, uptime ${m.uptimeMs} ms`), "last lines:", ...vm.tail, ""].join("\n"));
    else await rm(qemuLog, { force: true });
  }
}

function consoleTail(lines: readonly string[], count = 15): string {
  if (lines.length === 0) return "  (the console printed nothing)\n";
  return `  the console's last lines:\n${lines.slice(-count).map((l) => `    | ${l}`).join("\n")}\n`;
}

// ---- main ----

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "pith-bench-boot-"));
  if (flags.keep) log(`--keep: consoles, QEMU logs and initramfs stay in ${work}`);
  else tempDirs.add(work);
  const { apps, qemu, genericKernel } = await prepare(work);

  const samples: Sample[] = [];
  const total = warmup + runs;
  for (let run = 0; run < total; run++) {
    const measured = run >= warmup;
    for (const app of apps) {
      for (const contender of roundOrder(contenders, run)) {
        const label = `${app.setup.name}-${contender}-${run}`;
        const sample: Sample = { app: app.setup.name, contender, run: run - warmup + 1, load: Math.round(loadavg()[0]! * 100) / 100 };
        try {
          const result = contender === "pith" ? await bootPith(app, work, label) : await bootGeneric(app, machineOf(contender), work, label);
          sample.readyMs = result.readyMs;
          if (result.timings) sample.timings = result.timings;
          log(`${measured ? `run ${run - warmup + 1}/${runs}` : `warm-up ${run + 1}/${warmup}`}  ${app.setup.name.padEnd(9)} ${contender.padEnd(7)} ${Math.round(result.readyMs)} ms`);
        } catch (e) {
          sample.error = (e as Error).message;
          log(`${measured ? `run ${run - warmup + 1}/${runs}` : `warm-up ${run + 1}/${warmup}`}  ${app.setup.name.padEnd(9)} ${contender.padEnd(7)} FAILED: ${sample.error}`);
        }
        if (measured) samples.push(sample);
      }
    }
  }

  const summary = summarize({
    samples,
    apps: apps.map((a) => a.setup),
    contenders,
    runs,
    warmup,
    qemu,
    genericKernel,
    cpus: cpus().length,
    staticApp: apps.find((_, i) => APPS[i]?.staticImage)?.setup.name ?? "static-c",
    staticLimitBytes: STATIC_IMAGE_LIMIT_BYTES,
  });
  process.stdout.write(flags.json ? JSON.stringify(summary, null, 2) + "\n" : formatSummary(summary));
  if (summary.failures.length > 0) process.exitCode = 1;
}

// ---- helpers ----


function delay(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms));
}

async function tail(path: string, lines = 15): Promise<string> {
  if (!existsSync(path)) return "";
  const text = (await readFile(path, "utf8").catch(() => "")).trimEnd();
  if (!text) return `  (${path} is empty)\n`;
  return `  last lines of ${path}:\n${text.split("\n").slice(-lines).map((l) => `    | ${l}`).join("\n")}\n`;
}

function fatal(message: string): never {
  process.stderr.write(`bench/boot: ${message}\n`);
  process.exit(2);
}

main().catch((e: unknown) => {
  const message = isPithError(e) ? `${e.message}${e.hint ? `\n  hint: ${e.hint}` : ""}` : e instanceof Error ? (e.stack ?? e.message) : String(e);
  process.stderr.write(`bench/boot failed: ${message}\n`);
  cleanupSync();
  process.exitCode = 1;
});
