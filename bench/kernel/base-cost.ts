/**
 * What a wider `base` costs a machine: the app's image booted with its kernel as built today
 * against the same image booted with an older kernel of the same fragments from the kernel cache
 * (e.g. one built before base took the header-level options), paired and interleaved (ABBA), so
 * host load falls on both alike. Prints each kernel's stripped vmlinux size and option count, and
 * boot-to-ready (readyMs, and the kernel's own stage) per kernel, with medians and their ratio.
 *
 *   npx tsx bench/kernel/base-cost.ts [--app examples/static-c] [--old CONFIG_HASH_PREFIX|VMLINUX] [--runs 6]
 *
 * --old defaults to the most recently built cached kernel with the app's fragments and another
 * configuration; a path names any stripped vmlinux (an experiment's kernel, not in the cache).
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { BootTimings } from "../../src/hypervisor/hypervisor.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles } from "../../src/image/image-store.ts";
import { listKernels, type KernelInfo } from "../../src/kernel/kernel-cache.ts";
import { cachedKernel } from "../../src/kernel/kernel-builder.ts";
import { fragmentsFor, kernelNeedsOf } from "../../src/kernel/kernel-fragments.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";

const { values: flags } = parseArgs({
  options: {
    app: { type: "string", default: "examples/static-c" },
    old: { type: "string" },
    runs: { type: "string", default: "6" },
  },
});
const runs = Number(flags.runs);
if (!Number.isInteger(runs) || runs < 2 || runs % 2 !== 0) throw new Error(`--runs ${flags.runs}: give an even number >= 2 (runs alternate ABBA)`);
process.env.PITH_ACCEL ??= "tcg";

const appDir = join(pithRoot(), flags.app);
if (flags.app === "examples/static-c") execFileSync("make", ["-s", "-C", appDir]);
const manifest = await loadAppManifest(appDir);
const fragments = fragmentsFor(kernelNeedsOf(manifest));
const image = await buildImage(manifest);
const current = await cachedKernel(fragments);
if (!current) throw new Error(`no cached kernel for ${fragments.join("+")} after building the image`);
const sameFragments = (k: KernelInfo) => k.fragments.join("+") === fragments.join("+") && k.configHash !== current.configHash;
const oldFile = async (path: string): Promise<KernelInfo> => ({
  ...current,
  configHash: `file:${path}`,
  options: Number.NaN,
  vmlinux: path,
  vmlinuxBytes: (await stat(path)).size,
  builtAt: (await stat(path)).mtime.toISOString(),
});
const old = flags.old?.includes("/")
  ? await oldFile(flags.old)
  : (await listKernels()).filter((k) => (flags.old ? k.configHash.startsWith(flags.old) : sameFragments(k))).at(-1);
if (!old) throw new Error(`no other cached kernel ${flags.old ?? `with fragments ${fragments.join("+")}`} to compare with`);

const files = await bootFiles(image);
const hypervisor = new QemuHypervisor({ owner: "bench" });
const load = () => loadavg()[0]!.toFixed(1);

async function boot(kernel: KernelInfo, n: number): Promise<BootTimings> {
  const stateDir = await mkdtemp(join(tmpdir(), "pith-base-cost-"));
  const machine = await hypervisor.start({ id: `base-cost-${process.pid}-${n}`, stateDir, image: image.record, ...files, kernel: kernel.vmlinux });
  try {
    const ready = await Promise.race([machine.whenReady(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error("not ready within 120 s")), 120_000).unref())]);
    return { ...ready };
  } finally {
    await machine.stop(2000).catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  }
}

const contenders = [
  { label: "old", kernel: old, samples: [] as BootTimings[] },
  { label: "new", kernel: current, samples: [] as BootTimings[] },
];
const loads: string[] = [load()];
for (let i = 0; i < runs; i++) {
  // ABBA: each kernel goes first as often as second.
  const order = i % 4 === 0 || i % 4 === 3 ? contenders : [...contenders].reverse();
  for (const c of order) {
    const t = await boot(c.kernel, i);
    c.samples.push(t);
    process.stderr.write(`run ${i + 1}/${runs} ${c.label}: ready ${t.readyMs} ms (kernel ${t.kernelMs} ms), load ${load()}\n`);
  }
  loads.push(load());
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const rows = contenders.map((c) => {
  const ready = median(c.samples.map((s) => s.readyMs ?? NaN));
  const kernel = median(c.samples.map((s) => s.kernelMs ?? NaN));
  return { ...c, ready, kernelStage: kernel };
});
process.stdout.write(
  [
    `${flags.app}: ${fragments.join("+")}, ${runs} boots per kernel, ABBA, ${new Date().toISOString()}, load (1 min) ${loads.join(" ")}`,
    "| kernel | config | options | stripped vmlinux | ready, median (min-max) | kernel stage, median |",
    "|---|---|---|---|---|---|",
    ...rows.map((r) => {
      const ready = r.samples.map((s) => s.readyMs ?? NaN);
      const config = r.kernel.configHash.startsWith("file:") ? r.kernel.configHash : r.kernel.configHash.slice(0, 12);
      return `| ${r.label} (built ${r.kernel.builtAt.slice(0, 16)}) | ${config} | ${r.kernel.options} | ${r.kernel.vmlinuxBytes} | ${r.ready} ms (${Math.min(...ready)}-${Math.max(...ready)}) | ${r.kernelStage} ms |`;
    }),
    `new/old: size ${(rows[1]!.kernel.vmlinuxBytes / rows[0]!.kernel.vmlinuxBytes).toFixed(3)}, ready ${(rows[1]!.ready / rows[0]!.ready).toFixed(3)}, kernel stage ${(rows[1]!.kernelStage / rows[0]!.kernelStage).toFixed(3)}`,
    "",
  ].join("\n"),
);
