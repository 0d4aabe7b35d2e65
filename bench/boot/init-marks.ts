/**
 * The generic VM's phase marks: its /init prints the guest's uptime on the console when it starts
 * and when it runs the app; the bench stamps each line on arrival and dates the phases the way
 * Pith's own are dated (src/hypervisor/qemu/qemu-machine.ts): the uptime in the first mark places
 * the kernel's start on the host's clock.
 */
import type { BootTimings } from "../../src/hypervisor/hypervisor.ts";

/** Once /proc is mounted: the kernel's part is over. */
export const INIT_MARK = "bench-init";
/** Just before the app runs: init's part is over. */
export const EXEC_MARK = "bench-exec";

/** The shell line that prints a mark (`read` and `echo` are builtins: a mark costs no process). */
export const markCommand = (name: string): string => `read up _ < /proc/uptime; echo "${name} $up"`;

export interface StampedMark {
  /** performance.now() when the line arrived. */
  at: number;
  uptimeMs: number;
}

/** The mark a console line carries, if it is one. */
export function parseMark(text: string): { name: string; uptimeMs: number } | undefined {
  const match = /^(bench-init|bench-exec) ([0-9]{1,9}(?:\.[0-9]{1,3})?)$/.exec(text);
  return match ? { name: match[1]!, uptimeMs: Number(match[2]) * 1000 } : undefined;
}

/**
 * vmm = spawn to the kernel's start, kernel = to /init, init = to running the app, app = to the
 * first HTTP 200 (the kernel's "start" is when its clock starts: its earliest setup counts as vmm,
 * as in Pith's own timings). Undefined without both marks, or if they contradict each other or the clock.
 */
export function phasesFromMarks(marks: ReadonlyMap<string, StampedMark>, spawnedAt: number, readyAt: number): BootTimings | undefined {
  const init = marks.get(INIT_MARK);
  const exec = marks.get(EXEC_MARK);
  if (!init || !exec || exec.uptimeMs < init.uptimeMs || exec.at < init.at) return undefined;
  const kernelStartedAt = init.at - init.uptimeMs;
  const appStartedAt = kernelStartedAt + exec.uptimeMs;
  if (appStartedAt > readyAt) return undefined;
  return {
    vmmMs: Math.round(Math.max(0, kernelStartedAt - spawnedAt)),
    kernelMs: Math.round(init.uptimeMs),
    initMs: Math.round(exec.uptimeMs - init.uptimeMs),
    appMs: Math.round(readyAt - appStartedAt),
    readyMs: Math.round(readyAt - spawnedAt),
  };
}
