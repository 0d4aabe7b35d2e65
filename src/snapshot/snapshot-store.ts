import { existsSync, type Stats } from "node:fs";
import { readdir, readFile, rename, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import type { ImageRecord } from "../image/image.ts";
import { digestHex } from "../image/image-reference.ts";
import { userError } from "../shared/errors.ts";
import { sha256, sha256File } from "../shared/hash.ts";
import { imageStoreDir } from "../shared/paths.ts";
import { canonicalJson } from "../shared/canonical-json.ts";
import { guestVersion } from "./guest-version.ts";
import { ensurePrivateDir, tightenPrivateFiles, writePrivateFile } from "../shared/private-files.ts";

/**
 * Saved machines, kept beside their image in the image store:
 *
 *   images/<digest>/snapshots/<key>/snapshot.json   the record (mtime: when it was last used)
 *   images/<digest>/snapshots/<key>/state           QEMU's migration stream: memory and devices
 *
 * The key hashes everything a snapshot depends on: the image, the machine's shape, the
 * hypervisor (version and accelerator) and Pith's guest side (init and the guest library). A
 * change to any of them gives a new key, so a stale snapshot is never found, only evicted.
 */
export interface SnapshotRecord {
  schemaVersion: 1;
  key: string;
  image: { digest: string; name: string };
  shape: MachineShape;
  /** Hypervisor.snapshotTag() where it was saved. */
  hypervisor: string;
  guest: string;
  /** envKey() of the env the source booted with. */
  env: string;
  bytes: number;
  sha256: string;
  createdAt: string;
  /** How long the source machine was paused writing it. */
  saveMs: number;
}

/** What a restored machine must have exactly as its snapshot source had. */
export interface MachineShape {
  memoryMiB: number;
  vcpus: number;
  listen: number[];
  egress: string[];
  runtimeDisk: boolean;
}

export interface StoredSnapshot {
  record: SnapshotRecord;
  dir: string;
  stateFile: string;
  lastUsedAt: Date;
}

export type Verdict = { ok: true } | { ok: false; reason: string };

const DEFAULT_LIMIT_BYTES = 4 * 1024 ** 3;

export function shapeOf(image: ImageRecord): MachineShape {
  const { memoryMiB, vcpus, listen, egress } = image.capabilities;
  return { memoryMiB, vcpus, listen: listen.map((l) => l.port), egress: egress.map((e) => `${e.host}:${e.port}`), runtimeDisk: image.disk !== undefined };
}

/** The env a machine is started with (beyond the image's), as part of a key: the same env, the same key. */
export const envKey = (env: Record<string, string> | undefined): string => sha256(canonicalJson(env ?? {})).slice(0, 16);

/**
 * The snapshot key for an image on a hypervisor, with today's guest side. The machine's env is
 * part of it: the source boots with it, so an app that reads its env at start holds the right
 * values (only Pith's own PITH_* values change at restore).
 */
export async function snapshotKey(image: ImageRecord, hypervisorTag: string, env?: Record<string, string>): Promise<string> {
  const identity = { image: image.digest, shape: shapeOf(image), hypervisor: hypervisorTag, guest: await guestVersion(), env: envKey(env) };
  return sha256(canonicalJson(identity)).slice(0, 32);
}

/** PITH_SNAPSHOT_LIMIT: bytes, or with a K/M/G suffix (binary); default 4G. */
export function snapshotLimitBytes(text = process.env.PITH_SNAPSHOT_LIMIT): number {
  if (text === undefined || text === "") return DEFAULT_LIMIT_BYTES;
  const match = /^(\d+)([KMG]?)i?B?$/i.exec(text.trim());
  if (!match) throw userError("BAD_SNAPSHOT_LIMIT", `PITH_SNAPSHOT_LIMIT=${text} is not a size`, "use bytes or a K, M or G suffix, e.g. 2G");
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[2]!.toUpperCase() as "" | "K" | "M" | "G"];
  return Number(match[1]) * unit;
}

/** Which file, and which version of it: a rewrite in place changes its mtime, a replacement its inode. */
const fileIdentity = (path: string, info: Stats): string => `${path}:${info.ino}:${info.size}:${info.mtimeMs}`;

export class SnapshotStore {
  /** Files already hashed by this process, by identity: a snapshot is read whole once, not per restore. */
  private readonly verified = new Map<string, string>();

  constructor(private readonly root = imageStoreDir()) {}

  private snapshotsDir(digest: string): string {
    return join(this.root, digestHex(digest), "snapshots");
  }

  async find(image: ImageRecord, hypervisorTag: string, env?: Record<string, string>): Promise<StoredSnapshot | undefined> {
    return this.read(join(this.snapshotsDir(image.digest), await snapshotKey(image, hypervisorTag, env)));
  }

  private async read(dir: string): Promise<StoredSnapshot | undefined> {
    const path = join(dir, "snapshot.json");
    const [text, info] = await Promise.all([readFile(path, "utf8").catch(() => undefined), stat(path).catch(() => undefined)]);
    if (!text || !info) return undefined;
    try {
      return { record: JSON.parse(text) as SnapshotRecord, dir, stateFile: join(dir, "state"), lastUsedAt: info.mtime };
    } catch {
      return undefined; // a damaged record: list() shows nothing, the next save replaces it
    }
  }

  /**
   * Whether the state file is the one recorded: its size always (a truncated copy), its
   * sha256 the first time this process uses it (a damaged one; QEMU checks little of it).
   */
  async verify(snapshot: StoredSnapshot): Promise<Verdict> {
    const info = await stat(snapshot.stateFile).catch(() => undefined);
    if (!info) return { ok: false, reason: "its state file is missing" };
    if (info.size !== snapshot.record.bytes) return { ok: false, reason: `its state file has ${info.size} bytes, ${snapshot.record.bytes} were saved (truncated or replaced)` };
    const identity = fileIdentity(snapshot.stateFile, info);
    if (this.verified.get(snapshot.stateFile) === identity) return { ok: true };
    const digest = await sha256File(snapshot.stateFile);
    if (digest !== snapshot.record.sha256) return { ok: false, reason: `its state file's sha256 is ${digest.slice(0, 12)}…, ${snapshot.record.sha256.slice(0, 12)}… was saved (damaged)` };
    this.verified.set(snapshot.stateFile, identity);
    return { ok: true };
  }

  /** Records a use, so the size limit evicts the least recently used first. */
  async touch(snapshot: StoredSnapshot): Promise<void> {
    const now = new Date();
    await utimes(join(snapshot.dir, "snapshot.json"), now, now).catch(() => {});
  }

  /**
   * Saves a snapshot: `write` puts the state in the file it is given; the record is written
   * after it, and the directory renamed into place, so a crash leaves no half snapshot. Then
   * the size limit is enforced, never evicting this one (unless it alone is over the limit).
   */
  async save(image: ImageRecord, hypervisorTag: string, env: Record<string, string> | undefined, write: (stateFile: string) => Promise<{ ms: number }>): Promise<StoredSnapshot> {
    const key = await snapshotKey(image, hypervisorTag, env);
    const parent = this.snapshotsDir(image.digest);
    const staging = join(parent, `.staging-${key.slice(0, 8)}-${process.pid}-${Date.now()}`);
    await ensurePrivateDir(staging);
    try {
      const stateFile = join(staging, "state");
      const { ms } = await write(stateFile);
      // QEMU's `exec:cat >` creates it under its own umask: the guest's memory is a secret.
      await tightenPrivateFiles(stateFile);
      const [bytes, digest] = await Promise.all([stat(stateFile).then((s) => s.size), sha256File(stateFile)]);
      const record: SnapshotRecord = {
        schemaVersion: 1,
        key,
        image: { digest: image.digest, name: image.name },
        shape: shapeOf(image),
        hypervisor: hypervisorTag,
        guest: await guestVersion(),
        env: envKey(env),
        bytes,
        sha256: digest,
        createdAt: new Date().toISOString(),
        saveMs: ms,
      };
      await writePrivateFile(join(staging, "snapshot.json"), JSON.stringify(record, null, 2) + "\n");
      const dir = join(parent, key);
      await rm(dir, { recursive: true, force: true });
      await rename(staging, dir);
      const saved = (await this.read(dir))!;
      this.verified.set(saved.stateFile, fileIdentity(saved.stateFile, await stat(saved.stateFile)));
      await this.enforceLimit(key);
      if (!existsSync(dir)) throw userError("SNAPSHOT_TOO_LARGE", `the snapshot of ${image.name} (${bytes} bytes) is larger than the snapshot limit (${snapshotLimitBytes()} bytes)`, "raise PITH_SNAPSHOT_LIMIT");
      return saved;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  async list(): Promise<StoredSnapshot[]> {
    const images = await readdir(this.root).catch(() => [] as string[]);
    const found: StoredSnapshot[] = [];
    for (const image of images) {
      const parent = join(this.root, image, "snapshots");
      for (const key of await readdir(parent).catch(() => [] as string[])) {
        if (key.startsWith(".")) continue;
        const snapshot = await this.read(join(parent, key));
        if (snapshot) found.push(snapshot);
      }
    }
    return found.sort((a, b) => b.lastUsedAt.getTime() - a.lastUsedAt.getTime());
  }

  async remove(snapshot: StoredSnapshot): Promise<void> {
    this.verified.delete(snapshot.stateFile);
    await rm(snapshot.dir, { recursive: true, force: true });
  }

  /** Evicts the least recently used snapshots until the total fits PITH_SNAPSHOT_LIMIT. */
  async enforceLimit(keepKey?: string): Promise<StoredSnapshot[]> {
    const limit = snapshotLimitBytes();
    const all = await this.list();
    let total = all.reduce((sum, s) => sum + s.record.bytes, 0);
    const evicted: StoredSnapshot[] = [];
    // Oldest use first; the one just saved goes last, and only if it alone is too big.
    const order = [...all].reverse().sort((a, b) => Number(a.record.key === keepKey) - Number(b.record.key === keepKey));
    for (const snapshot of order) {
      if (total <= limit) break;
      await this.remove(snapshot);
      total -= snapshot.record.bytes;
      evicted.push(snapshot);
    }
    return evicted;
  }
}
