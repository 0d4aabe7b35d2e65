/**
 * Turns measured boots into the summary: per-contender median/min/max and phases, ratios against
 * the target, and the static image's size. Pure functions, so the numbers and the text come from
 * one place.
 */
import type { BootTimings } from "../../src/hypervisor/hypervisor.ts";

/**
 * `pith`: the image as Pith runs it. `generic`: Debian's cloud kernel and a busybox init on Pith's
 * own machine (microvm): the contender the target is measured against. `q35`: the same kernel and
 * init on a conventional PC (firmware, ACPI, PCI), for reference.
 */
export type Contender = "pith" | "generic" | "q35";
export const CONTENDERS: readonly Contender[] = ["pith", "generic", "q35"];
/** The contender whose ratio to Pith is the target. */
export const TARGET_CONTENDER: Contender = "generic";

export interface Sample {
  app: string;
  contender: Contender;
  run: number;
  /** Spawn (or start() call) to the first HTTP 200 on the forwarded port. */
  readyMs?: number;
  /**
   * Where the boot went: Pith's from its init's reports; a generic VM's from its init's console
   * marks (vmm = spawn to the kernel's start, kernel = to /init, init = to running the app, app =
   * to the first HTTP 200).
   */
  timings?: BootTimings;
  error?: string;
  /** The host's 1-minute load average when the boot started (2 cores: above ~1.5, others compete). */
  load?: number;
}

export interface ContenderSetup {
  memoryMiB: number;
  memoryNote?: string;
  kernelBytes: number;
  initrdBytes: number;
  /** Kernel modules its init loads, in order. */
  modules?: string[];
}

export interface AppSetup {
  name: string;
  /** Minimum generic/pith ratio of medians. */
  targetRatio: number;
  storedBytes: number;
  digest: string;
  contenders: Partial<Record<Contender, ContenderSetup>>;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export interface ContenderResult {
  ready: Spread | undefined;
  /** Median of each phase. */
  timings: Partial<Record<keyof BootTimings, number>>;
  failures: number;
  /** This contender's median over Pith's (undefined for Pith itself). */
  ratio?: number;
  /** Median of this/pith within each run: the boots of a run ran back to back. */
  pairedRatio?: number;
}

export interface Summary {
  date: string;
  host: { cpus: number; accelerator: "tcg"; qemu: string; genericKernel: string };
  runs: number;
  warmup: number;
  measure: string;
  contenders: Contender[];
  apps: Array<{
    name: string;
    results: Partial<Record<Contender, ContenderResult>>;
    target: { against: Contender; ratio: number; pass: boolean };
    setup: AppSetup;
  }>;
  staticImage: { app: string; storedBytes: number; limitBytes: number; pass: boolean } | undefined;
  /** The host's 1-minute load average over the measured boots. */
  hostLoad: { min: number; max: number } | undefined;
  failures: Sample[];
  samples: Sample[];
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function spread(values: number[]): Spread | undefined {
  if (values.length === 0) return undefined;
  return { median: round(median(values)), min: round(Math.min(...values)), max: round(Math.max(...values)), n: values.length };
}

const TIMING_KEYS: Array<keyof BootTimings> = ["vmmMs", "kernelMs", "initMs", "appMs", "readyMs"];

export function summarize(options: {
  samples: Sample[];
  apps: AppSetup[];
  contenders: Contender[];
  runs: number;
  warmup: number;
  qemu: string;
  genericKernel: string;
  cpus: number;
  staticApp: string;
  staticLimitBytes: number;
}): Summary {
  const { samples, apps, contenders } = options;
  const of = (app: string, contender: Contender) => samples.filter((s) => s.app === app && s.contender === contender);
  const ok = (list: Sample[]) => list.filter((s) => s.readyMs !== undefined).map((s) => s.readyMs!);
  const staticSetup = apps.find((a) => a.name === options.staticApp);
  return {
    date: new Date().toISOString(),
    host: { cpus: options.cpus, accelerator: "tcg", qemu: options.qemu, genericKernel: options.genericKernel },
    runs: options.runs,
    warmup: options.warmup,
    measure: "QEMU spawn (Pith: start() call) to the first HTTP 200 on the forwarded port",
    contenders,
    apps: apps.map((setup) => {
      const pithSamples = of(setup.name, "pith");
      const pith = spread(ok(pithSamples));
      const results: Partial<Record<Contender, ContenderResult>> = {};
      for (const contender of contenders) {
        const list = of(setup.name, contender);
        const ready = spread(ok(list));
        const timings: Partial<Record<keyof BootTimings, number>> = {};
        for (const key of TIMING_KEYS) {
          const values = list.flatMap((s) => (s.timings?.[key] !== undefined ? [s.timings[key]!] : []));
          if (values.length) timings[key] = round(median(values));
        }
        const result: ContenderResult = { ready, timings, failures: list.filter((s) => s.error).length };
        if (contender !== "pith" && pith && ready) {
          result.ratio = round2(ready.median / pith.median);
          const pairs = pithSamples.flatMap((p) => {
            const other = list.find((x) => x.run === p.run);
            return p.readyMs !== undefined && other?.readyMs !== undefined ? [other.readyMs / p.readyMs] : [];
          });
          if (pairs.length) result.pairedRatio = round2(median(pairs));
        }
        results[contender] = result;
      }
      const targetRatio = results[TARGET_CONTENDER]?.ratio;
      return {
        name: setup.name,
        results,
        target: { against: TARGET_CONTENDER, ratio: setup.targetRatio, pass: targetRatio !== undefined && targetRatio >= setup.targetRatio },
        setup,
      };
    }),
    staticImage: staticSetup && {
      app: staticSetup.name,
      storedBytes: staticSetup.storedBytes,
      limitBytes: options.staticLimitBytes,
      pass: staticSetup.storedBytes < options.staticLimitBytes,
    },
    hostLoad: loadRange(samples),
    failures: samples.filter((s) => s.error),
    samples,
  };
}

function loadRange(samples: Sample[]): Summary["hostLoad"] {
  const loads = samples.flatMap((s) => (s.load === undefined ? [] : [s.load]));
  return loads.length ? { min: round(Math.min(...loads)), max: round(Math.max(...loads)) } : undefined;
}

export function formatSummary(s: Summary): string {
  const out: string[] = [];
  const ms = (v: number | undefined) => (v === undefined ? "n/a" : `${Math.round(v)} ms`);
  const bytes = (n: number) => `${n.toLocaleString("en-US")} B (${(n / 1e6).toFixed(2)} MB)`;
  const verdict = (pass: boolean) => (pass ? "PASS" : "MISS");
  const x = (v: number | undefined) => (v === undefined ? "n/a" : `${v.toFixed(2)}x`);

  out.push(`boot-to-ready: ${s.measure}`);
  out.push(`${s.date}, ${s.host.cpus} cores, QEMU TCG (${s.host.qemu}), ${s.runs} measured runs per contender after ${s.warmup} warm-up, interleaved ${s.contenders.join("/")} (the order rotated each run)`);
  if (s.hostLoad) out.push(`host load (1-min average) at each boot: ${s.hostLoad.min.toFixed(1)} to ${s.hostLoad.max.toFixed(1)}`);
  out.push("");
  const widths = [10, 9, 9, 9, 9, 7, 7, 10, 10, 8];
  out.push(pad(["app", "contender", "median", "min", "max", "ok/runs", "memory", "kernel", "initramfs", "/pith"], widths));
  for (const app of s.apps) {
    for (const c of s.contenders) {
      const r = app.results[c];
      const setup = app.setup.contenders[c];
      if (!r || !setup) continue;
      out.push(pad([app.name, c, ms(r.ready?.median), ms(r.ready?.min), ms(r.ready?.max), `${r.ready?.n ?? 0}/${s.runs}`, `${setup.memoryMiB}M`, mb(setup.kernelBytes), mb(setup.initrdBytes), c === "pith" ? "" : x(r.ratio)], widths));
    }
  }
  out.push("");
  out.push("every measured boot, in run order (ms):");
  for (const app of s.apps) {
    for (const c of s.contenders) {
      const list = s.samples.filter((x) => x.app === app.name && x.contender === c).map((x) => (x.readyMs === undefined ? "FAIL" : String(Math.round(x.readyMs))));
      out.push(`  ${app.name.padEnd(10)} ${c.padEnd(8)} ${list.join(" ")}`);
    }
  }
  out.push("");
  out.push("where the time goes (medians; vmm = until the kernel's clock runs, kernel = to /init, init = to running the app, app = to ready):");
  for (const app of s.apps) {
    for (const c of s.contenders) {
      const t = app.results[c]?.timings;
      if (!t) continue;
      out.push(`  ${app.name.padEnd(10)} ${c.padEnd(8)} vmm ${ms(t.vmmMs)}, kernel ${ms(t.kernelMs)}, init ${ms(t.initMs)}, app ${ms(t.appMs)}`);
    }
  }
  out.push("  (Pith's app stage ends at its init's ready report; a generic VM's at the first HTTP 200.)");
  out.push("");
  out.push("targets:");
  for (const app of s.apps) {
    const r = app.results[app.target.against];
    const paired = r?.pairedRatio === undefined ? "" : ` (median of per-run ratios ${x(r.pairedRatio)})`;
    out.push(`  ${app.name.padEnd(10)} ${app.target.against}/pith medians = ${x(r?.ratio).padEnd(6)} target >= ${app.target.ratio}x   ${verdict(app.target.pass)}${paired}`);
  }
  if (s.staticImage) {
    const i = s.staticImage;
    out.push(`  ${i.app.padEnd(10)} whole Pith image stored = ${bytes(i.storedBytes)}, target < ${bytes(i.limitBytes)}   ${verdict(i.pass)}`);
  }
  const notes = s.apps.flatMap((a) => s.contenders.flatMap((c) => (a.setup.contenders[c]?.memoryNote ? [`  ${a.name} ${c}: ${a.setup.contenders[c]!.memoryNote}`] : [])));
  notes.push(`  generic kernel: ${s.host.genericKernel}; generic = Pith's microvm (+ACPI), qboot, PVH vmlinux; q35 = SeaBIOS, bzImage, PCI; both a busybox /init`);
  for (const c of s.contenders) {
    const modules = s.apps[0]?.setup.contenders[c]?.modules;
    if (modules) notes.push(`  ${c} modules: ${modules.map((m) => m.replace(/^.*\//, "")).join(" ")}`);
  }
  out.push("");
  out.push("notes:");
  out.push(...notes);
  if (s.failures.length) {
    out.push("");
    out.push(`FAILED runs (${s.failures.length}):`);
    for (const f of s.failures) out.push(`  ${f.app} ${f.contender} run ${f.run}: ${f.error!.split("\n")[0]}`);
  }
  return out.join("\n") + "\n";
}

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
const round = (v: number): number => Math.round(v * 10) / 10;
const round2 = (v: number): number => Math.round(v * 100) / 100;

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
}
