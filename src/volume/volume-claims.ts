import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { open, readFile, realpath, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { userError } from "../shared/errors.ts";
import { sha256 } from "../shared/hash.ts";

/** Host-wide, like uid claims: two Pith processes on one host must never hand one volume to two machines. */
export const DEFAULT_CLAIMS_DIR = "/run/pith/volumes";
/** A claim this young belongs to a machine still starting: its QEMU may not be running yet. */
const CLAIM_GRACE_MS = 60_000;

interface Claim {
  /** The machine's jail key, `<owner>/<machineId>`: its QEMU is named `pith:<key>`. */
  key: string;
  path: string;
}

/**
 * One writer per volume on a host. A machine claims each of its volume files before its QEMU
 * starts, by creating `<dir>/<hash of the file's real path>` exclusively; the claim is given back
 * when the machine is gone. A claim whose machine no longer runs (its manager was killed before
 * it could release it) is taken over once it is older than a starting machine's. QEMU's own
 * image locking (a write lock on the file) is the second line: a second QEMU could not open it.
 */
export class VolumeClaims {
  constructor(private readonly dir: string = DEFAULT_CLAIMS_DIR) {}

  /** Claims every file for `key`, all or none; refuses with the machine that holds one. */
  async claimAll(key: string, paths: readonly string[]): Promise<void> {
    const claimed: string[] = [];
    try {
      for (const path of paths) {
        await this.claim(key, path);
        claimed.push(path);
      }
    } catch (e) {
      for (const path of claimed) await this.release(key, path);
      throw e;
    }
  }

  async claim(key: string, path: string): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const file = await this.claimFile(path);
    const claim: Claim = { key, path };
    if (await tryCreate(file, claim)) return;
    const holder = await readClaim(file);
    if (holder?.key === key) return;
    if (holder && (machineRunning(holder.key) || !(await isStale(file)))) {
      throw userError("VOLUME_IN_USE", `volume ${path} is attached to machine ${holder.key}; a volume has one writer at a time`,
        "stop that machine first (its replacement starts once it is gone)");
    }
    await rm(file, { force: true });
    if (await tryCreate(file, claim)) return;
    throw userError("VOLUME_IN_USE", `volume ${path} was claimed by another machine just now`, "stop that machine first");
  }

  /** Gives the claim back, but only if `key` still holds it. */
  async release(key: string, path: string): Promise<void> {
    const file = await this.claimFile(path).catch(() => undefined);
    if (file && (await readClaim(file))?.key === key) await rm(file, { force: true });
  }

  /** The machine holding a volume file, if one does. */
  async holder(path: string): Promise<string | undefined> {
    return (await readClaim(await this.claimFile(path)))?.key;
  }

  private async claimFile(path: string): Promise<string> {
    // The real path: two spellings of one file (a symlink, "..") are one volume.
    return join(this.dir, sha256(await realpath(path)).slice(0, 32));
  }
}

async function tryCreate(file: string, claim: Claim): Promise<boolean> {
  try {
    const handle = await open(file, "wx", 0o600);
    await handle.writeFile(JSON.stringify(claim));
    await handle.close();
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
}

async function readClaim(file: string): Promise<Claim | undefined> {
  const text = await readFile(file, "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as Partial<Claim>;
    return typeof parsed.key === "string" && typeof parsed.path === "string" ? { key: parsed.key, path: parsed.path } : undefined;
  } catch {
    // A torn write (a crash while claiming): nobody can hold it, the grace period decides.
    return { key: "(unreadable claim)", path: "" };
  }
}

async function isStale(file: string): Promise<boolean> {
  const info = await stat(file).catch(() => undefined);
  return !info || Date.now() - info.mtimeMs > CLAIM_GRACE_MS;
}

/** Whether the QEMU of machine `key` runs on this host: its argv has `-name pith:<key>`. */
export function machineRunning(key: string): boolean {
  const wanted = `\0pith:${key}\0`;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (`\0${readFileSync(`/proc/${entry}/cmdline`, "latin1")}`.includes(wanted)) return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}
