import { statSync } from "node:fs";
import { copyFile, stat, truncate } from "node:fs/promises";
import { rotatedPath } from "../../shared/file-tail.ts";

/**
 * A machine's console log (ttyS0), which QEMU appends to (`append=on`) for as long as the machine
 * runs, whoever watches. The guest decides how much it writes, so the host bounds it: past a cap
 * the file is copied to `console.log.1` and truncated (QEMU's next write lands at the new end,
 * since it appends), and a guest writing faster than a flood rate is failed. Readers only ever
 * take a bounded tail (shared/file-tail.ts), never the whole file.
 */
export interface ConsoleLimits {
  /** Size at which console.log is rotated to console.log.1 (one rotated file is kept). */
  capBytes: number;
  /** Writing more than this within `floodWindowMs` fails the machine. */
  floodBytes: number;
  floodWindowMs: number;
  /** How often the file's size is checked. */
  pollMs: number;
}

export const CONSOLE_LIMITS: ConsoleLimits = { capBytes: 1024 * 1024, floodBytes: 2 * 1024 * 1024, floodWindowMs: 10_000, pollMs: 250 };

export const CONSOLE_FLOOD = "ConsoleFlood";

export interface ConsoleWatcher {
  stop(): void;
}

/**
 * Watches one machine's console log: rotates it at the cap, and calls `onFlood` once (then stops)
 * if the guest writes faster than the flood rate. Every error is swallowed: a log that cannot be
 * read or rotated right now is tried again at the next poll, and never takes the host down.
 */
export function watchConsoleLog(path: string, onFlood: (reason: string) => void, limits: ConsoleLimits = CONSOLE_LIMITS): ConsoleWatcher {
  // What is there already (an adopted machine's log) was not written within the window.
  let lastSize = sizeNow(path);
  /** Bytes written per poll within the flood window, oldest first. */
  const recent: { at: number; bytes: number }[] = [];
  let busy = false;
  let stopped = false;

  const check = async (): Promise<void> => {
    const size = await stat(path).then((s) => s.size, () => undefined);
    if (size === undefined) return;
    const now = performance.now();
    // A file smaller than last time was rotated (by us) or replaced: count from its start.
    const grown = size >= lastSize ? size - lastSize : size;
    lastSize = size;
    recent.push({ at: now, bytes: grown });
    while (recent.length > 0 && now - recent[0]!.at > limits.floodWindowMs) recent.shift();
    const written = recent.reduce((sum, r) => sum + r.bytes, 0);
    if (written > limits.floodBytes) {
      stop();
      onFlood(`${CONSOLE_FLOOD}: the guest wrote ${written} bytes to its console within ${limits.floodWindowMs / 1000} s (at most ${limits.floodBytes})`);
      return;
    }
    if (size > limits.capBytes) {
      // Copy, then truncate: QEMU keeps its descriptor, and what it appends in between is lost,
      // which is the price of a cap without QEMU's cooperation.
      await copyFile(path, rotatedPath(path));
      await truncate(path, 0);
      lastSize = 0;
    }
  };

  const timer = setInterval(() => {
    if (busy || stopped) return;
    busy = true;
    check()
      .catch(() => {})
      .finally(() => (busy = false));
  }, limits.pollMs);
  timer.unref();
  const stop = (): void => {
    stopped = true;
    clearInterval(timer);
  };
  return { stop };
}

function sizeNow(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
