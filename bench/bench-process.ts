/**
 * What every bench needs to leave nothing behind: kill the process groups it started (QEMU and
 * the contenders run detached, each leading its own group), read state files that may be gone,
 * and clean up on exit, error or Ctrl-C; and the CPU time a machine's QEMU has run.
 */
import { readdirSync, readFileSync } from "node:fs";

/** SIGKILL a process group, or the process itself if it leads none; a process already gone is fine. */
export function killProcessGroup(pid: number): boolean {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, "SIGKILL");
      return true;
    } catch {
      // not a group leader, or already gone: try the next way
    }
  }
  return false;
}

/** A file's text, or "" when it does not exist (a machine's pid file after it stopped). */
export function readFileOrEmpty(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** CPU time (ms) all of a process's threads have run (/proc/PID/task/TID/schedstat): less disturbed by host load than wall time. */
export function processCpuMs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileOrEmpty(`/proc/${pid}/task/${tid}/schedstat`).split(" ")[0] ?? 0);
  return ns / 1e6;
}

/** Runs `cleanup` at exit, and on SIGINT/SIGTERM/SIGHUP after saying `what` it removes, then exits 130. */
export function cleanupOnExit(cleanup: () => void, what: string, log: (line: string) => void): void {
  process.on("exit", cleanup);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      log(`\n${signal}: ${what}`);
      cleanup();
      process.exit(130);
    });
  }
}
