import { open, readFile, rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * An exclusive lock between processes on one host, as a file holding the owner's PID. A lock
 * whose owner is dead is taken over, so a killed build never wedges the cache.
 */
export async function withFileLock<T>(path: string, work: () => Promise<T>, onWait?: (ownerPid: number) => void): Promise<T> {
  let warned = false;
  for (;;) {
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const owner = Number((await readFile(path, "utf8").catch(() => "")).trim());
      if (!owner || !isAlive(owner)) {
        await rm(path, { force: true });
        continue;
      }
      if (!warned) onWait?.(owner);
      warned = true;
      await sleep(500);
    }
  }
  try {
    return await work();
  } finally {
    await rm(path, { force: true });
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
