import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { userError } from "../../shared/errors.ts";

/**
 * Kernel samepage merging, an operator's opt-in: QEMU marks guest RAM mergeable (mem-merge is on
 * by default), so with ksmd running, identical pages of machines of the same image (kernel, init,
 * the runtime's code, zeroed memory) are kept once. It costs ksmd's CPU, and a co-tenant can time
 * copy-on-write faults on merged pages to learn what another machine holds: enable it only where
 * the machines trust each other (one tenant per host).
 */
export const KSM_DIR = "/sys/kernel/mm/ksm";

/** The knobs Pith sets, and restores to what they were. */
const KNOBS = ["run", "pages_to_scan", "sleep_millisecs"] as const;
type Knob = (typeof KNOBS)[number];
export type KsmSettings = Record<Knob, number>;

/**
 * What ksmd scans per wake-up and how long it sleeps: 1000 pages (4 MiB) every 100 ms, ~40 MiB/s.
 * ksmd's CPU grows with its pace: at 4000 pages every 50 ms it took 36% of a core (2026-12-06,
 * 6 idle hello-ts machines), more than the machines themselves. Idle machines change slowly, so
 * a full pass every few seconds per GiB of guest memory is enough.
 */
export const KSM_DENSITY_SETTINGS: KsmSettings = { run: 1, pages_to_scan: 1000, sleep_millisecs: 100 };

export interface KsmStats {
  /** Pages kept once for several copies, and how many copies point at them. */
  pagesShared: number;
  pagesSharing: number;
  /** Full scans done since ksmd started: a whole pass over mergeable memory. */
  fullScans: number;
}

export function ksmAvailable(dir = KSM_DIR): boolean {
  return existsSync(join(dir, "run"));
}

const readNumber = (dir: string, name: string): number => {
  const text = readFileSync(join(dir, name), "utf8").trim();
  const value = Number(text);
  if (!Number.isInteger(value)) throw new Error(`${join(dir, name)} holds "${text}", not a number`);
  return value;
};

export function readKsmSettings(dir = KSM_DIR): KsmSettings {
  return Object.fromEntries(KNOBS.map((k) => [k, readNumber(dir, k)])) as KsmSettings;
}

export function readKsmStats(dir = KSM_DIR): KsmStats {
  return { pagesShared: readNumber(dir, "pages_shared"), pagesSharing: readNumber(dir, "pages_sharing"), fullScans: readNumber(dir, "full_scans") };
}

/**
 * Applies `settings` and returns what undoes it: the previous values, written back in reverse
 * order (`run` last, so ksmd stops before its pace is restored). Writing run=0 keeps merged pages
 * merged; they are unshared as the machines write to them or exit.
 */
export function applyKsmSettings(settings: KsmSettings, dir = KSM_DIR): () => void {
  const before = readKsmSettings(dir);
  const order: Knob[] = ["pages_to_scan", "sleep_millisecs", "run"];
  for (const knob of order) writeFileSync(join(dir, knob), String(settings[knob]));
  return () => {
    for (const knob of [...order].reverse()) writeFileSync(join(dir, knob), String(before[knob]));
  };
}

/**
 * `pith up --ksm` / `pith agent --ksm`: KSM on at Pith's pace while the process runs; the undo
 * puts the host's settings back. A host without KSM, or a user who may not write its settings,
 * gets an error saying so before anything starts.
 */
export function enableKsmForMachines(dir = KSM_DIR): () => void {
  if (!ksmAvailable(dir)) throw userError("KSM_UNAVAILABLE", `--ksm: this host's kernel has no KSM (${dir} is missing)`);
  try {
    return applyKsmSettings(KSM_DENSITY_SETTINGS, dir);
  } catch (e) {
    throw userError("KSM_UNAVAILABLE", `--ksm: cannot set ${dir}: ${(e as Error).message}`, "run as root, or drop --ksm");
  }
}
