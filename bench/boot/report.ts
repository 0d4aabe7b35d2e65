/**
 * Turns measured boots into the summary: per-contender median/min/max, ratios against targets,
 * and the static image's size. Pure functions, so the numbers and the text come from one place.
 */
import type { BootTimings } from "../../src/hypervisor/hypervisor.ts";

export type Contender = "pith" | "generic";

export interface Sample {
  app: string;
  contender: Contender;
  run: number;
  /** Spawn (or start() call) to the first HTTP 200 on the forwarded port. */
  readyMs?: number;
  /** Pith's own stage timings for the same boot. */
  timings?: BootTimings;
  error?: string;
  /** The host's 1-minute load average when the boot started (2 cores: above ~1.5, others compete). */
  load?: number;
}

export interface AppSetup {
  name: string;
  /** Minimum generic/pith ratio of medians. */
  targetRatio: number;
  pith: { memoryMiB: number; kernelBytes: number; initrdBytes: number; storedBytes: number; digest: string };
  generic: { memoryMiB: number; memoryNote?: string; kernelBytes: number; initrdBytes: number; modules: string[] };
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export interface Summary {
  date: string;
  host: { cpus: number; accelerator: "tcg"; qemu: string; genericKernel: string };
  runs: number;
  warmup: number;
  measure: string;
  apps: Array<{
    name: string;
    pith: Spread | undefined;
    generic: Spread | undefined;
    pithTimings: Partial<Record<keyof BootTimings, number>>;
    failures: { pith: number; generic: number };
    ratio: number | undefined;
    /** Median of generic/pith within each run: the two boots of a pair ran back to back. */
    pairedRatio: number | undefined;
    target: { ratio: number; pass: boolean };
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
  runs: number;
  warmup: number;
  qemu: string;
  genericKernel: string;
  cpus: number;
  staticApp: string;
  staticLimitBytes: number;
}): Summary {
  const { samples, apps } = options;
  const of = (app: string, contender: Contender) => samples.filter((s) => s.app === app && s.contender === contender);
  const ok = (list: Sample[]) => list.filter((s) => s.readyMs !== undefined).map((s) => s.readyMs!);
  const staticSetup = apps.find((a) => a.name === options.staticApp);
  return {
    date: new Date().toISOString(),
    host: { cpus: options.cpus, accelerator: "tcg", qemu: options.qemu, genericKernel: options.genericKernel },
    runs: options.runs,
    warmup: options.warmup,
    measure: "QEMU spawn (Pith: start() call) to the first HTTP 200 on the forwarded port",
    apps: apps.map((setup) => {
      const pith = spread(ok(of(setup.name, "pith")));
      const generic = spread(ok(of(setup.name, "generic")));
      const ratio = pith && generic ? Math.round((generic.median / pith.median) * 100) / 100 : undefined;
      const pairs = of(setup.name, "pith").flatMap((p) => {
        const g = of(setup.name, "generic").find((x) => x.run === p.run);
        return p.readyMs !== undefined && g?.readyMs !== undefined ? [g.readyMs / p.readyMs] : [];
      });
      const pairedRatio = pairs.length ? Math.round(median(pairs) * 100) / 100 : undefined;
      const pithTimings: Partial<Record<keyof BootTimings, number>> = {};
      for (const key of TIMING_KEYS) {
        const values = of(setup.name, "pith").flatMap((s) => (s.timings?.[key] !== undefined ? [s.timings[key]!] : []));
        if (values.length) pithTimings[key] = round(median(values));
      }
      return {
        name: setup.name,
        pith,
        generic,
        pithTimings,
        failures: { pith: of(setup.name, "pith").filter((s) => s.error).length, generic: of(setup.name, "generic").filter((s) => s.error).length },
        ratio,
        pairedRatio,
        target: { ratio: setup.targetRatio, pass: ratio !== undefined && ratio >= setup.targetRatio },
        setup,
      };
    }),
    staticImage: staticSetup && {
      app: staticSetup.name,
      storedBytes: staticSetup.pith.storedBytes,
      limitBytes: options.staticLimitBytes,
      pass: staticSetup.pith.storedBytes < options.staticLimitBytes,
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

  out.push(`boot-to-ready: ${s.measure}`);
  out.push(`${s.date}, ${s.host.cpus} cores, QEMU TCG (${s.host.qemu}), ${s.runs} measured runs per contender after ${s.warmup} warm-up, interleaved pith/generic`);
  if (s.hostLoad) out.push(`host load (1-min average) at each boot: ${s.hostLoad.min.toFixed(1)} to ${s.hostLoad.max.toFixed(1)}`);
  out.push("");
  out.push(pad(["app", "contender", "median", "min", "max", "ok/runs", "memory", "kernel", "initramfs"], [10, 9, 9, 9, 9, 7, 7, 12, 12]));
  for (const app of s.apps) {
    for (const c of ["pith", "generic"] as const) {
      const sp = app[c];
      const setup = app.setup[c];
      out.push(
        pad(
          [app.name, c, ms(sp?.median), ms(sp?.min), ms(sp?.max), `${sp?.n ?? 0}/${s.runs}`, `${setup.memoryMiB}M`, mb(setup.kernelBytes), mb(setup.initrdBytes)],
          [10, 9, 9, 9, 9, 7, 7, 12, 12],
        ),
      );
    }
  }
  out.push("");
  out.push("every measured boot, in run order (ms):");
  for (const app of s.apps) {
    for (const c of ["pith", "generic"] as const) {
      const list = s.samples.filter((x) => x.app === app.name && x.contender === c).map((x) => (x.readyMs === undefined ? "FAIL" : String(Math.round(x.readyMs))));
      out.push(`  ${app.name.padEnd(10)} ${c.padEnd(8)} ${list.join(" ")}`);
    }
  }
  out.push("");
  out.push("Pith's own boot timings (median; vmm + kernel + init + app = ready, from init's reports):");
  for (const app of s.apps) {
    const t = app.pithTimings;
    out.push(`  ${app.name.padEnd(10)} vmm ${ms(t.vmmMs)}, kernel ${ms(t.kernelMs)}, init ${ms(t.initMs)}, app ${ms(t.appMs)}; ready ${ms(t.readyMs)}`);
  }
  out.push("");
  out.push("targets:");
  for (const app of s.apps) {
    const ratio = app.ratio === undefined ? "n/a" : `${app.ratio.toFixed(2)}x`;
    const paired = app.pairedRatio === undefined ? "" : ` (median of per-run ratios ${app.pairedRatio.toFixed(2)}x)`;
    out.push(`  ${app.name.padEnd(10)} generic/pith medians = ${ratio.padEnd(6)} target >= ${app.target.ratio}x   ${verdict(app.target.pass)}${paired}`);
  }
  if (s.staticImage) {
    const i = s.staticImage;
    out.push(`  ${i.app.padEnd(10)} whole Pith image stored = ${bytes(i.storedBytes)}, target < ${bytes(i.limitBytes)}   ${verdict(i.pass)}`);
  }
  const notes = s.apps.flatMap((a) => (a.setup.generic.memoryNote ? [`  ${a.name}: ${a.setup.generic.memoryNote}`] : []));
  notes.push(`  generic: ${s.host.genericKernel} on -M q35 (default firmware), busybox /init, modules: ${s.apps[0]?.setup.generic.modules.map((m) => m.replace(/^.*\//, "")).join(" ") ?? ""}`);
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

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
}
