/**
 * What a running machine costs the host, read from /proc: memory as PSS (a page shared by n
 * processes counts 1/n to each, so the sum over machines is what they take together) and CPU as
 * utime+stime, of its QEMU and its pith-net.
 */
import { readdirSync, readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

/** Clock ticks per second, the unit of utime and stime in /proc/PID/stat. */
export const CLOCK_TICKS_PER_SECOND = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** Pss of one process in KiB, from smaps_rollup; 0 when it is gone. */
export function pssKiB(pid: number): number {
  try {
    const match = /^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** utime+stime of one process, in clock ticks; 0 when it is gone. */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** MemTotal and MemAvailable, in KiB. */
export function hostMemoryKiB(): { total: number; available: number } {
  const text = readFileSync("/proc/meminfo", "utf8");
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(text)?.[1] ?? NaN);
  return { total: field("MemTotal"), available: field("MemAvailable") };
}

/** The pid of a kernel thread by name (ksmd), or undefined. */
export function kernelThreadPid(name: string): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === name) return Number(entry);
    } catch {
      // gone while we looked
    }
  }
  return undefined;
}
