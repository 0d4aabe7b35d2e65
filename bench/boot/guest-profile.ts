/**
 * Where a boot's guest time goes, by kernel function: samples the vCPU's instruction pointer
 * through QMP while a machine boots, and names each sample from the kernel's System.map.
 *
 *   npx tsx bench/boot/guest-profile.ts [--app examples/static-c] [--runs 3] [--window 50] [--top 6]
 *
 * Each run starts the app's image as Pith does (QemuHypervisor, jailed, PITH_ACCEL=tcg), connects
 * to the machine's QMP socket as soon as QEMU makes it, and asks `info registers` (HMP) in a loop
 * until the machine is ready. Every answer pauses the vCPU for a moment, so the boot runs slower
 * than unobserved; the shares are what to read, not the times. Samples in the firmware (no
 * paging), the kernel's identity-mapped entry or user space (CPL 3: init and the app) are labelled so. Per window of `--window` ms from start() and overall, the functions seen most.
 * This is how the APIC timer calibration and the init memory poisoning were found (bench/README.md,
 * boot). Needs a kernel built since kernels keep their System.map (`pith kernel build` again, or
 * remove the kernel's cache dir). Every machine is stopped and its state dir removed.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { QmpClient } from "../../src/hypervisor/qemu/qmp-client.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles } from "../../src/image/image-store.ts";
import { kernelDir, SYSTEM_MAP } from "../../src/kernel/kernel-cache.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { missingForMachines } from "../../test/support/machines.ts";

const { values: flags } = parseArgs({
  options: {
    app: { type: "string", default: "examples/static-c" },
    runs: { type: "string", default: "3" },
    window: { type: "string", default: "50" },
    top: { type: "string", default: "6" },
  },
});
const RUNS = Number(flags.runs);
const WINDOW_MS = Number(flags.window);
const TOP = Number(flags.top);
if (![RUNS, WINDOW_MS, TOP].every((n) => Number.isInteger(n) && n > 0)) {
  process.stderr.write(`--runs, --window and --top must be whole numbers > 0\n`);
  process.exit(2);
}
process.env.PITH_ACCEL = "tcg";

/** Kernel text symbols sorted by address, and a lookup of the one an address falls in. */
class SymbolTable {
  private readonly addresses: bigint[] = [];
  private readonly names: string[] = [];

  constructor(systemMap: string) {
    const rows = systemMap
      .split("\n")
      .map((line) => line.split(" "))
      .filter((f) => f.length >= 3 && /^[tTwW]$/.test(f[1]!))
      .map((f) => [BigInt(`0x${f[0]}`), f[2]!] as const)
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [address, name] of rows) {
      this.addresses.push(address);
      this.names.push(name);
    }
  }

  nameOf(rip: bigint, cpl: number, paging: boolean): string {
    if (cpl === 3) return "(user space)";
    if (!paging) return "(firmware)";
    if (rip < 0xffff800000000000n) return "(kernel entry, identity-mapped)";
    let lo = 0;
    let hi = this.addresses.length - 1;
    if (hi < 0 || rip < this.addresses[0]!) return "(kernel, unnamed)";
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.addresses[mid]! <= rip) lo = mid;
      else hi = mid - 1;
    }
    return this.names[lo]!;
  }
}

interface Sample {
  atMs: number;
  where: string;
}

async function sampleBoot(run: number, image: Awaited<ReturnType<typeof buildImage>>, symbols: SymbolTable): Promise<{ samples: Sample[]; readyMs: number }> {
  const hypervisor = new QemuHypervisor({ owner: "bench" });
  const stateDir = await mkdtemp(join(tmpdir(), "pith-guest-profile-"));
  const qmpPath = join(stateDir, "vm", "qmp.sock");
  const samples: Sample[] = [];
  let ready = false;
  const t0 = performance.now();
  const starting = hypervisor.start({ id: `guest-profile-${process.pid}-${run}`, stateDir, image: image.record, ...(await bootFiles(image)) });
  const sampling = (async () => {
    // The socket appears once QEMU runs; QMP serves while the guest boots.
    while (!existsSync(qmpPath) && performance.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 1));
    const qmp = await QmpClient.connect(qmpPath, 10_000, 1);
    try {
      while (!ready && performance.now() - t0 < 60_000) {
        const registers = String(await qmp.execute("human-monitor-command", { "command-line": "info registers" }));
        const rip = /RIP=([0-9a-f]+)/.exec(registers)?.[1];
        const cpl = Number(/CPL=(\d)/.exec(registers)?.[1] ?? 0);
        // CR0.PG: qboot runs unpaged; the kernel's first instructions run identity-mapped.
        const paging = (Number.parseInt(/CR0=([0-9a-f]+)/.exec(registers)?.[1] ?? "0", 16) & 0x80000000) !== 0;
        if (rip) samples.push({ atMs: performance.now() - t0, where: symbols.nameOf(BigInt(`0x${rip}`), cpl, paging) });
      }
    } finally {
      qmp.close();
    }
  })();
  const machine = await starting;
  try {
    const timings = await machine.whenReady();
    ready = true;
    await sampling;
    return { samples, readyMs: timings.readyMs ?? Number.NaN };
  } finally {
    ready = true;
    await sampling.catch(() => undefined);
    await machine.stop(2000).catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  }
}

function top(samples: Sample[]): string {
  const counts = new Map<string, number>();
  for (const s of samples) counts.set(s.where, (counts.get(s.where) ?? 0) + 1);
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, TOP)
    .map(([name, n]) => `${name} ${Math.round((n / samples.length) * 100)}%`)
    .join(", ");
}

async function main(): Promise<void> {
  const missing = missingForMachines();
  if (missing) return void process.stderr.write(`bench/boot/guest-profile: skipped: ${missing}\n`);
  const image = await buildImage(await loadAppManifest(join(pithRoot(), flags.app!)));
  const mapFile = join(kernelDir(image.record.kernel.configHash), SYSTEM_MAP);
  if (!existsSync(mapFile)) {
    process.stderr.write(`bench/boot/guest-profile: kernel ${image.record.kernel.configHash.slice(0, 12)} has no ${SYSTEM_MAP} (built before kernels kept one): remove ${kernelDir(image.record.kernel.configHash)} and build again\n`);
    process.exitCode = 1;
    return;
  }
  const symbols = new SymbolTable(readFileSync(mapFile, "utf8"));
  const all: Sample[] = [];
  for (let run = 0; run < RUNS; run++) {
    const { samples, readyMs } = await sampleBoot(run, image, symbols);
    all.push(...samples);
    process.stderr.write(`run ${run + 1}/${RUNS}: ${samples.length} samples, ready in ${readyMs} ms (observed: slower than unobserved)\n`);
  }
  const windows = new Map<number, Sample[]>();
  for (const s of all) {
    const w = Math.floor(s.atMs / WINDOW_MS);
    const inWindow = windows.get(w) ?? [];
    inWindow.push(s);
    windows.set(w, inWindow);
  }
  process.stdout.write(`${flags.app}: ${all.length} samples over ${RUNS} boots, kernel ${image.record.kernel.configHash.slice(0, 12)}\n`);
  for (const [w, samples] of [...windows.entries()].sort((a, b) => a[0] - b[0])) {
    process.stdout.write(`  ${String(w * WINDOW_MS).padStart(5)}-${String((w + 1) * WINDOW_MS).padEnd(5)} ms  n=${String(samples.length).padEnd(4)} ${top(samples)}\n`);
  }
  process.stdout.write(`  overall: ${top(all)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/boot/guest-profile: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
