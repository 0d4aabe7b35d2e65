import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { open, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { userError } from "../shared/errors.ts";

/** The uids (and equal gids) Pith hands to machines unless PITH_JAIL_UIDS says otherwise. */
export const DEFAULT_UID_RANGE = { first: 970_000, count: 10_000 };
/** Host-wide, not per PITH_HOME: two Pith installations on one host must never share a uid. */
export const DEFAULT_POOL_DIR = "/run/pith/uids";
/** A claim this young is a machine still starting: its QEMU may not run as the uid yet. */
const CLAIM_GRACE_MS = 60_000;

export interface UidRange {
  first: number;
  count: number;
}

/** `PITH_JAIL_UIDS=FIRST-LAST`. */
export function uidRangeFromEnv(value = process.env.PITH_JAIL_UIDS): UidRange {
  if (!value) return DEFAULT_UID_RANGE;
  const m = /^(\d+)-(\d+)$/.exec(value.trim());
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1000 || last < first || last > 4_294_967_294) {
    throw userError("INVALID_UID_RANGE", `PITH_JAIL_UIDS=${value} is not a range of uids Pith may own`, "give FIRST-LAST, both at least 1000, e.g. PITH_JAIL_UIDS=970000-979999; no user of this host may use them");
  }
  return { first, count: last - first + 1 };
}

/**
 * Each machine runs as a uid of its own from a range Pith owns, so two machines' VMMs cannot
 * signal, trace or read each other. A uid is claimed by creating `<dir>/<uid>` exclusively,
 * holding the machine's key; it is free again only once the claim is released or the machine is
 * gone: no process runs as that uid and the claim is older than a starting machine's.
 */
export class UidPool {
  constructor(
    private readonly range: UidRange = uidRangeFromEnv(),
    private readonly dir: string = DEFAULT_POOL_DIR,
  ) {}

  async claim(key: string): Promise<number> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const start = Math.floor(Math.random() * this.range.count);
    let running: Set<number> | undefined;
    for (let i = 0; i < this.range.count; i++) {
      const uid = this.range.first + ((start + i) % this.range.count);
      const path = join(this.dir, String(uid));
      if (await this.tryCreate(path, key)) return uid;
      running ??= uidsInUse();
      if (running.has(uid) || !(await isStale(path))) continue;
      await rm(path, { force: true });
      if (await this.tryCreate(path, key)) return uid;
    }
    throw userError("NO_FREE_UID", `every uid in ${this.range.first}-${this.range.first + this.range.count - 1} belongs to a running machine`, "stop machines, or widen PITH_JAIL_UIDS");
  }

  /** True once no machine can hold the uid: unclaimed, or claimed by a machine that is gone. */
  async isFree(uid: number): Promise<boolean> {
    const path = join(this.dir, String(uid));
    if ((await this.holder(uid)) === undefined) return true;
    return (await isStale(path)) && !uidsInUse().has(uid);
  }

  /** The key a uid was claimed for, if it is claimed. */
  async holder(uid: number): Promise<string | undefined> {
    return (await readFile(join(this.dir, String(uid)), "utf8").catch(() => undefined))?.trim();
  }

  /** Gives the uid back, but only if `key` still holds it (a re-claimed uid is someone else's). */
  async release(uid: number, key: string): Promise<void> {
    if ((await this.holder(uid)) === key) await rm(join(this.dir, String(uid)), { force: true });
  }

  contains(uid: number): boolean {
    return uid >= this.range.first && uid < this.range.first + this.range.count;
  }

  private async tryCreate(path: string, key: string): Promise<boolean> {
    try {
      const handle = await open(path, "wx", 0o600);
      await handle.writeFile(`${key}\n`);
      await handle.close();
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw e;
    }
  }
}

async function isStale(path: string): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  return !info || Date.now() - info.mtimeMs > CLAIM_GRACE_MS;
}

/** Every real uid some process on this host runs as. */
export function uidsInUse(): Set<number> {
  const uids = new Set<number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const uid = processUid(Number(entry));
    if (uid !== undefined) uids.add(uid);
  }
  return uids;
}

/** The real uid of a process, from /proc/PID/status, or undefined if it is gone. */
export function processUid(pid: number): number | undefined {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

