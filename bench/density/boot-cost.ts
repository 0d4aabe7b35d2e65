/**
 * What a density setting costs a boot, compared in pairs: each round boots one machine per
 * variant, one after another in a rotated order, and records its boot-to-ready time and the CPU
 * time its processes spent to get there. A loaded host moves wall time by 2-5x between minutes,
 * so each variant is compared with the first one of the same round (the paired ratio), and CPU
 * time is reported beside wall time because the host's load inflates it far less.
 *
 *   npx tsx bench/density/boot-cost.ts [--app hello-ts] [--variants before,tb-32,tb-24] [--rounds N (5)]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Machine } from "../../src/hypervisor/hypervisor.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { inspectProcesses } from "../../src/hypervisor/qemu/qemu-discovery.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles } from "../../src/image/image-store.ts";
import { cachedKernel } from "../../src/kernel/kernel-builder.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { streamProgress } from "../../src/shared/progress.ts";
import { cleanupOnExit, killProcessGroup } from "../bench-process.ts";
import { CLOCK_TICKS_PER_SECOND, cpuTicks } from "./host-cost.ts";
import { VARIANTS } from "./variants.ts";

const { values: flags } = parseArgs({
  options: {
    app: { type: "string", default: "hello-ts" },
    variants: { type: "string", default: "before,tb-32,tb-24" },
    rounds: { type: "string", default: "5" },
  },
});
const rounds = Number(flags.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a whole number >= 1, got ${flags.rounds}`);
const variants = flags.variants.split(",").map((name) => {
  const variant = VARIANTS.find((v) => v.name === name);
  if (!variant) throw new Error(`unknown variant "${name}" (known: ${VARIANTS.map((v) => v.name).join(", ")})`);
  // KSM is a host-wide setting for many machines; one machine at a time has nothing to share.
  if (variant.ksm) throw new Error(`variant "${name}" turns on KSM: boot cost is compared one machine at a time, without it`);
  return variant;
});
process.env.PITH_ACCEL = "tcg";
const log = (line: string): void => void process.stderr.write(`${line}\n`);

let current: Machine | undefined;
cleanupOnExit(() => current && killProcessGroup(current.pid), "stopping the machine", log);

const dir = join(pithRoot(), "examples", flags.app);
const manifest = await loadAppManifest(dir);
const runtime = manifest.source.kind === "entry" ? "node" : "native";
const image = await buildImage(manifest, streamProgress(`building ${flags.app}`));
const baseFiles = await bootFiles(image);

interface Boot {
  readyMs: number;
  cpuMs: number;
}
const boots = new Map<string, Boot[]>(variants.map((v) => [v.name, []]));
const ratios = new Map<string, { ready: number[]; cpu: number[] }>(variants.map((v) => [v.name, { ready: [], cpu: [] }]));

async function boot(variant: (typeof variants)[number], round: number): Promise<Boot> {
  let files = baseFiles;
  if (variant.kernelFragments) {
    const fragments = [...image.record.kernel.fragments, ...variant.kernelFragments];
    const kernel = await cachedKernel(fragments);
    if (!kernel) throw new Error(`no kernel built for ${fragments.join("+")} (pith kernel build -f ${fragments.join(",")})`);
    files = { ...files, kernel: kernel.vmlinux };
  }
  const record = variant.memoryMiB ? { ...image.record, capabilities: { ...image.record.capabilities, memoryMiB: variant.memoryMiB } } : image.record;
  const hypervisor = new QemuHypervisor({
    owner: "bench",
    ...(variant.tcgTranslationCacheMiB !== undefined ? { tcgTranslationCacheMiB: variant.tcgTranslationCacheMiB } : {}),
    ...(variant.freePageReporting ? { freePageReporting: true } : {}),
  });
  const env = runtime === "node" ? variant.env : undefined;
  const stateDir = await mkdtemp(join(tmpdir(), "pith-bench-boot-cost-"));
  try {
    current = await hypervisor.start({ id: `boot-cost-${variant.name}-${round}`, image: record, ...files, stateDir, ...(env ? { env } : {}) });
    const timings = await current.whenReady();
    const [found] = await inspectProcesses([current.pid]);
    const pids = [current.pid, ...(found?.netHelper ? [found.netHelper.pid] : [])];
    const cpuMs = (pids.reduce((sum, pid) => sum + cpuTicks(pid), 0) / CLOCK_TICKS_PER_SECOND) * 1000;
    return { readyMs: timings.readyMs!, cpuMs };
  } finally {
    await current?.stop(1000).catch(() => current && killProcessGroup(current.pid));
    current = undefined;
    await rm(stateDir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
for (let round = 0; round < rounds; round++) {
  // Rotate the order so that no variant always boots first (on a cold cache) or last.
  const order = variants.map((_, i) => variants[(i + round) % variants.length]!);
  const thisRound = new Map<string, Boot>();
  for (const variant of order) {
    if (variant.runtime && variant.runtime !== runtime) continue;
    const result = await boot(variant, round);
    thisRound.set(variant.name, result);
    boots.get(variant.name)!.push(result);
    log(`round ${round + 1} ${variant.name}: ready ${result.readyMs.toFixed(0)} ms, ${result.cpuMs.toFixed(0)} ms CPU (load ${loadavg()[0]!.toFixed(1)})`);
  }
  const reference = thisRound.get(variants[0]!.name);
  if (!reference) continue;
  for (const [name, result] of thisRound) {
    ratios.get(name)!.ready.push(result.readyMs / reference.readyMs);
    ratios.get(name)!.cpu.push(result.cpuMs / reference.cpuMs);
  }
}

const lines = [
  `boot cost ${new Date().toISOString()}: ${flags.app}, ${rounds} rounds, load at end ${loadavg().map((l) => l.toFixed(1)).join(" ")}`,
  `| variant | ready median | boot CPU median | paired ready / ${variants[0]!.name} | paired CPU / ${variants[0]!.name} |`,
  "|---|---|---|---|---|",
];
for (const variant of variants) {
  const results = boots.get(variant.name)!;
  if (results.length === 0) continue;
  const ratio = ratios.get(variant.name)!;
  lines.push(
    `| ${variant.name} | ${median(results.map((b) => b.readyMs)).toFixed(0)} ms | ${median(results.map((b) => b.cpuMs)).toFixed(0)} ms | ` +
      `${median(ratio.ready).toFixed(2)} | ${median(ratio.cpu).toFixed(2)} |`,
  );
}
process.stdout.write(`${lines.join("\n")}\n`);
