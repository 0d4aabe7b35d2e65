import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { isAlive } from "../../shared/file-lock.ts";

/**
 * A QEMU process as the driver sees it: one it spawned, or one it found running after a restart
 * (which is not its child, so its exit status cannot be known, only that it is gone).
 */
export interface VmProcess {
  readonly pid: number;
  readonly adopted: boolean;
  /** Settles when the process is gone: status and signal for a child, nulls for an adopted one. */
  readonly exited: Promise<{ status: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>;
  isRunning(): boolean;
  kill(signal: NodeJS.Signals): void;
}

/**
 * Every process a machine is made of (QEMU, its network helper) starts here, so that whatever
 * confines them wraps one call. `inherit`: open descriptors the process gets as fd 3, 4, ...
 * (a snapshot to restore from). `stdout: "pipe"` hands stdout to the caller (pith-net's `ready`).
 */
export function spawnVm(binary: string, argv: string[], logPath: string, inherit: number[] = [], stdout: "log" | "pipe" = "log"): VmProcess & { stdout: Readable | null } {
  // Its own complaints go to a file, so they outlive this process.
  const log = openSync(logPath, "w");
  // Its own process group: a Ctrl-C meant for Pith must not kill the machine before init has
  // stopped the app gracefully, and a restarted agent must find it still running.
  const child = spawn(binary, argv, { stdio: ["ignore", stdout === "pipe" ? "pipe" : log, log, ...inherit], detached: true });
  closeSync(log);
  const exited = new Promise<{ status: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>((resolve) => {
    child.once("exit", (status, signal) => resolve({ status, signal }));
    child.once("error", (spawnError) => resolve({ status: null, signal: null, spawnError }));
  });
  return {
    pid: child.pid ?? -1,
    adopted: false,
    stdout: child.stdout,
    exited,
    isRunning: () => child.exitCode === null && child.signalCode === null && child.pid !== undefined,
    kill: (signal) => void child.kill(signal),
  };
}

/** Watches a process that is not our child by polling for it; a quarter second is plenty. */
export function adoptVm(pid: number, pollMs = 250): VmProcess {
  let running = isAlive(pid);
  const exited = new Promise<{ status: null; signal: null }>((resolve) => {
    const timer = setInterval(() => {
      if (isAlive(pid) && !isZombie(pid)) return;
      running = false;
      clearInterval(timer);
      resolve({ status: null, signal: null });
    }, pollMs);
  });
  return {
    pid,
    adopted: true,
    exited,
    isRunning: () => running,
    kill: (signal) => {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    },
  };
}

/** A process that was expected and is not there (an adopted machine's missing network helper). */
export function goneVm(): VmProcess {
  return { pid: -1, adopted: true, exited: Promise.resolve({ status: null, signal: null }), isRunning: () => false, kill: () => {} };
}

function isZombie(pid: number): boolean {
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return true;
  }
}
