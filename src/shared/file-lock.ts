import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { link, readFile, rename, rm, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * An exclusive lock between processes on one host, as a file naming its owner (PID and the
 * process's start time, so a recycled PID is not mistaken for the owner). A lock whose owner is
 * dead is taken over, so a killed build never wedges the cache.
 *
 * The lock file appears with its content in one step (written aside, then hard-linked into place,
 * which fails if a lock exists), so nobody ever reads a lock without an owner. A stale lock is
 * taken over by renaming it aside first: of several processes that found it stale only one rename
 * succeeds, and one that moved a lock which turns out not to be the stale one puts it back.
 */
export async function withFileLock<T>(path: string, work: () => Promise<T>, onWait?: (ownerPid: number) => void): Promise<T> {
  const self = ownerOf(process.pid);
  const pending = `${path}.${process.pid}-${randomBytes(4).toString("hex")}.new`;
  await writeFile(pending, self);
  let warned = false;
  try {
    for (;;) {
      try {
        await link(pending, path);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const owner = await readFile(path, "utf8").catch(() => undefined);
      if (owner === undefined) continue;
      if (!ownerAlive(owner)) {
        await takeOverStale(path, owner);
        continue;
      }
      if (!warned) onWait?.(Number(owner.split(" ")[0]));
      warned = true;
      await sleep(200);
    }
  } finally {
    await rm(pending, { force: true });
  }
  try {
    return await work();
  } finally {
    await rm(path, { force: true });
  }
}

/** Moves a stale lock aside; if what was moved is not the stale owner's, puts it back. */
async function takeOverStale(path: string, staleOwner: string): Promise<void> {
  const aside = `${path}.${process.pid}-${randomBytes(4).toString("hex")}.stale`;
  try {
    await rename(path, aside);
  } catch {
    return; // someone else moved it first
  }
  const moved = await readFile(aside, "utf8").catch(() => undefined);
  if (moved !== undefined && moved !== staleOwner && ownerAlive(moved)) {
    // A live owner's fresh lock: restore it. If a third process made a lock meanwhile, two
    // processes now believe they hold it; this needs three-way timing inside a takeover.
    await link(aside, path).catch(() => undefined);
  }
  await rm(aside, { force: true });
}

/** "PID STARTTIME": the start time (clock ticks after boot) tells a recycled PID apart. */
function ownerOf(pid: number): string {
  return `${pid} ${startTime(pid) ?? 0}`;
}

function ownerAlive(owner: string): boolean {
  const [pidText, startText] = owner.trim().split(" ");
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return false;
  // Locks written by an older Pith hold only a PID; trust it then.
  if (startText === undefined || startText === "0") return true;
  return startTime(pid) === Number(startText);
}

function startTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 22, counted after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
