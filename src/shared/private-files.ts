import { chmodSync, closeSync, createWriteStream, openSync, statSync, type WriteStream } from "node:fs";
import { chmod, mkdir, open, stat, writeFile } from "node:fs/promises";
import { resolve, sep } from "node:path";
import { pithHome } from "./paths.ts";

/**
 * Pith's files hold secrets (the API token, the store, snapshots of guest memory, machine
 * handles, request logs), so everything it creates under PITH_HOME is its owner's alone:
 * directories 0700, files 0600. Modes given to mkdir/open are filtered by the umask, so each
 * helper also sets the mode exactly; and a path that already exists looser is tightened, since
 * an older Pith (or a user's umask) may have created it.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

const isMissing = (error: unknown): boolean => (error as NodeJS.ErrnoException).code === "ENOENT";

/**
 * Creates `dir` (and missing parents) 0700, and tightens it if it exists looser. A dir under
 * PITH_HOME checks PITH_HOME first, so whichever command creates it first creates it private.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  const home = resolve(pithHome());
  if (resolve(dir) === home || resolve(dir).startsWith(home + sep)) await ensurePithHome();
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await tighten(dir, PRIVATE_DIR_MODE);
}

/** Writes `data` to `path` as a 0600 file (created, or truncated and tightened). */
export async function writePrivateFile(path: string, data: string | Uint8Array, flag: "w" | "wx" = "w"): Promise<void> {
  await writeFile(path, data, { mode: PRIVATE_FILE_MODE, flag });
  await tighten(path, PRIVATE_FILE_MODE);
}

/** Makes sure `path` exists as a 0600 file without changing its contents (e.g. before SQLite opens it). */
export async function touchPrivateFile(path: string): Promise<void> {
  await (await open(path, "a", PRIVATE_FILE_MODE)).close();
  await tighten(path, PRIVATE_FILE_MODE);
}

/** Tightens files something else created (QEMU, SQLite); a missing one is fine. */
export async function tightenPrivateFiles(...paths: string[]): Promise<void> {
  await Promise.all(paths.map((p) => tighten(p, PRIVATE_FILE_MODE).catch((error) => { if (!isMissing(error)) throw error; })));
}

/**
 * The same as touchPrivateFile and tightenPrivateFiles, synchronously, for SQLite: it creates
 * `-wal` and `-shm` with the database file's mode, so a private database keeps them private.
 */
export function touchPrivateFileSync(path: string): void {
  closeSync(openSync(path, "a", PRIVATE_FILE_MODE));
  tightenSync(path, PRIVATE_FILE_MODE);
}

export function tightenPrivateFilesSync(...paths: string[]): void {
  for (const path of paths) {
    try {
      tightenSync(path, PRIVATE_FILE_MODE);
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }
}

/** An append stream to a 0600 file, for logs. */
export function openPrivateAppendStream(path: string): WriteStream {
  const stream = createWriteStream(path, { flags: "a", mode: PRIVATE_FILE_MODE });
  stream.once("open", () => void chmod(path, PRIVATE_FILE_MODE).catch(() => {}));
  return stream;
}

/**
 * PITH_HOME itself, created 0700. An existing one that is looser is tightened and that is said
 * once per process on stderr, because it means the token and the store may have been readable
 * by others until now; one we may not chmod (not ours) is only warned about.
 */
const homeChecked = new Map<string, Promise<string>>();
export function ensurePithHome(warn: (message: string) => void = (m) => process.stderr.write(`pith: ${m}\n`)): Promise<string> {
  const home = resolve(pithHome());
  let checked = homeChecked.get(home);
  if (checked) return checked;
  checked = (async () => {
    await mkdir(home, { recursive: true, mode: PRIVATE_DIR_MODE });
    const mode = (await stat(home)).mode & 0o777;
    if ((mode & 0o077) === 0) return home;
    const was = `mode ${mode.toString(8).padStart(4, "0")}`;
    try {
      await chmod(home, PRIVATE_DIR_MODE);
      warn(`PITH_HOME ${home} had ${was}, readable by other users; tightened it to 0700 because it holds the API token, the store and snapshots of guest memory`);
    } catch (error) {
      warn(`PITH_HOME ${home} has ${was}, readable by other users, and could not be tightened (${(error as Error).message}): it holds the API token, the store and snapshots of guest memory; run chmod 700 ${home}`);
    }
    return home;
  })();
  homeChecked.set(home, checked);
  checked.catch(() => homeChecked.delete(home));
  return checked;
}

async function tighten(path: string, mode: number): Promise<void> {
  if (((await stat(path)).mode & 0o777 & ~mode) !== 0) await chmod(path, mode);
}

function tightenSync(path: string, mode: number): void {
  if ((statSync(path).mode & 0o777 & ~mode) !== 0) chmodSync(path, mode);
}
