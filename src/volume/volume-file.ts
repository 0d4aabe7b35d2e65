import { chmod, rename, rm, stat, statfs } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { pithHome } from "../shared/paths.ts";
import { execFile } from "../shared/exec.ts";
import { userError } from "../shared/errors.ts";
import { ensurePrivateDir } from "../shared/private-files.ts";

const MiB = 1024 * 1024;

/** Where a node keeps its volumes' files: one sparse ext4 image per volume. */
export const volumesDir = (): string => join(pithHome(), "volumes");
/** A Volume's file. The name comes from the API, so it is checked again before it names a path. */
export function volumeFilePath(volumeName: string): string {
  if (!/^[a-z0-9][-a-z0-9.]{0,239}$/.test(volumeName)) {
    throw userError("VOLUME_NAME_INVALID", `"${volumeName.slice(0, 64)}" cannot name a volume file`, "use a Volume name of lowercase letters, digits, '-' and '.', at most 240 characters");
  }
  return join(volumesDir(), `${volumeName}.ext4`);
}
/** `pith run`'s volumes, kept per app and volume so the next run of the app finds its data. */
export const runVolumePath = (appName: string, volumeName: string): string => join(volumesDir(), "run", `${appName}-${volumeName}.ext4`);

/**
 * Makes a volume's file once: a sparse ext4 filesystem of `sizeMiB`, root's, mode 0600 (the jail
 * hands it to a machine's uid only while that machine holds it). Refused, with nothing written,
 * if this filesystem has less free space than the volume's size: sparse files are promises, and
 * a volume that cannot be filled fails its app mid-write instead of at creation. Built under a
 * temporary name and renamed, so a volume file exists whole or not at all. Returns whether it
 * made the file (false: it was already there).
 */
export async function ensureVolumeFile(path: string, sizeMiB: number): Promise<boolean> {
  const existing = await stat(path).catch(() => undefined);
  if (existing) {
    if (!existing.isFile()) throw userError("VOLUME_FILE_INVALID", `${path} exists and is not a volume file`, "move it away; Pith makes volume files itself");
    return false;
  }
  await ensurePrivateDir(dirname(path));
  const free = await freeBytes(dirname(path));
  if (sizeMiB * MiB > free) {
    throw userError("VOLUME_NO_SPACE", `a volume of ${sizeMiB} MiB does not fit: ${dirname(path)} has ${Math.floor(free / MiB)} MiB free`,
      "declare a smaller size, or free space on this node");
  }
  const partial = join(dirname(path), `.${basename(path)}.partial-${process.pid}`);
  try {
    // ext4 for its journal (a killed machine's volume is replayed at the next mount, no fsck);
    // no reserved blocks (nobody but the app writes it); lazy init keeps the file sparse.
    await execFile("mke2fs", ["-q", "-F", "-t", "ext4", "-m", "0", "-E", "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1",
      "-L", "pith-volume", partial, `${sizeMiB}M`], { code: "VOLUME_CREATE_FAILED" });
    await chmod(partial, 0o600);
    await rename(partial, path);
    return true;
  } finally {
    await rm(partial, { force: true });
  }
}

export async function freeBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.bavail * fs.bsize;
}
