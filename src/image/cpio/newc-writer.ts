/**
 * Writes cpio "newc" (070701) archives, the format the Linux kernel unpacks as an initramfs.
 *
 * Output is a pure function of the entries and the file contents: timestamps, owners and inode
 * numbers are fixed, and entries are sorted, so the same app always builds the same image bytes.
 * File contents are streamed from disk because images carry ~100 MB binaries such as node.
 */
import { open, rm, type FileHandle } from "node:fs/promises";
import { systemError, userError } from "../../shared/errors.ts";

export type CpioEntry = {
  /** Path inside the archive, relative, e.g. "bin/node"; no leading slash, "." or "..". */
  path: string;
  kind: "file" | "dir" | "symlink" | "chardev";
  /** Permission bits only (0 to 0o7777); the file type bits come from `kind`. */
  mode: number;
  /** For "file": host file whose contents to store (exactly one of source and data). */
  source?: string;
  /**
   * For "file" with a source: the device and inode it must still be when it is copied. A path
   * checked earlier (a file the manifest declared) and swapped since is refused, not followed.
   */
  identity?: { dev: number; ino: number };
  /** For "file": inline contents. */
  data?: Uint8Array;
  /** For "symlink": the link target, stored verbatim. */
  target?: string;
  /** For "chardev": device numbers, e.g. 5,1 for /dev/console. */
  major?: number;
  minor?: number;
};

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

const TYPE_BITS: Record<CpioEntry["kind"], number> = { file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK, chardev: S_IFCHR };

/** The kernel's initramfs unpacker refuses names and symlink targets longer than PATH_MAX. */
const PATH_MAX = 4096;
/** newc stores sizes in 8 hex digits. */
const MAX_FILE_SIZE = 0xffffffff;
const COPY_CHUNK = 1 << 20;
const TRAILER = "TRAILER!!!";

const BAD_ENTRY_HINT = "This is a bug in how the image contents were assembled; please report it.";

/**
 * Writes `entries` (plus any missing parent directories, mode 0755) to `outPath`, sorted by path.
 * On failure the partial archive is removed.
 */
export async function writeCpio(entries: CpioEntry[], outPath: string): Promise<{ bytes: number }> {
  const ordered = planEntries(entries);
  let out: FileHandle;
  try {
    out = await open(outPath, "w");
  } catch (e) {
    throw systemError("CPIO_WRITE_FAILED", `Cannot create ${outPath}: ${(e as Error).message}`, "Check that the directory exists and is writable.", e);
  }
  const writer = new BufferedWriter(out);
  try {
    let ino = 1;
    for (const entry of ordered) await writeEntry(writer, entry, ino++);
    await writer.write(header({ ino: 0, mode: 0, nlink: 1, fileSize: 0, rdevMajor: 0, rdevMinor: 0, name: TRAILER }));
    await writer.flush();
    await out.close();
    return { bytes: writer.bytes };
  } catch (e) {
    await out.close().catch(() => {});
    await rm(outPath, { force: true });
    throw e;
  }
}

/** Validates, adds implied parent directories, and orders entries so parents precede children. */
function planEntries(entries: CpioEntry[]): CpioEntry[] {
  const byPath = new Map<string, CpioEntry>();
  for (const entry of entries) {
    validate(entry);
    if (byPath.has(entry.path)) throw userError("CPIO_DUPLICATE_PATH", `The image lists ${entry.path} more than once`, BAD_ENTRY_HINT);
    byPath.set(entry.path, entry);
  }
  for (const entry of entries) {
    const parts = entry.path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      const existing = byPath.get(parent);
      if (!existing) byPath.set(parent, { path: parent, kind: "dir", mode: 0o755 });
      else if (existing.kind !== "dir") {
        throw userError("CPIO_BAD_PATH", `Cannot put ${entry.path} in the image: ${parent} is a ${existing.kind}, not a directory`, BAD_ENTRY_HINT);
      }
    }
  }
  // Component-wise byte order: a parent is a prefix so sorts first, and a directory's contents stay
  // together ("a", "a/b", "a-b"), independent of locale.
  const keyed = [...byPath.values()].map((entry) => ({ entry, parts: entry.path.split("/").map((p) => Buffer.from(p)) }));
  keyed.sort((a, b) => {
    for (let i = 0; i < Math.min(a.parts.length, b.parts.length); i++) {
      const c = Buffer.compare(a.parts[i]!, b.parts[i]!);
      if (c !== 0) return c;
    }
    return a.parts.length - b.parts.length;
  });
  return keyed.map((k) => k.entry);
}

function validate(entry: CpioEntry): void {
  const { path, kind } = entry;
  const bad = (why: string) => userError("CPIO_BAD_PATH", `Invalid image path ${JSON.stringify(path)}: ${why}`, BAD_ENTRY_HINT);
  if (typeof path !== "string" || path === "") throw bad("it is empty");
  if (path.startsWith("/")) throw bad("it must be relative to the image root, without a leading slash (e.g. \"bin/node\")");
  if (path.includes("\0")) throw bad("it contains a NUL byte");
  if (Buffer.byteLength(path) >= PATH_MAX) throw bad(`it is longer than ${PATH_MAX - 1} bytes`);
  for (const part of path.split("/")) {
    if (part === "") throw bad("it has an empty component (\"//\" or a trailing slash)");
    if (part === "." || part === "..") throw bad(`it contains a "${part}" component`);
  }

  const invalid = (why: string) => userError("CPIO_BAD_ENTRY", `Invalid image entry ${path}: ${why}`, BAD_ENTRY_HINT);
  if (!(kind in TYPE_BITS)) throw invalid(`unknown kind ${JSON.stringify(kind)}`);
  if (!Number.isInteger(entry.mode) || entry.mode < 0 || entry.mode > 0o7777) {
    throw invalid(`mode ${entry.mode} is not permission bits (0 to 0o7777)`);
  }
  if (kind === "file" && (entry.source === undefined) === (entry.data === undefined)) {
    throw invalid("a file needs exactly one of source or data");
  }
  if (kind === "file" && entry.data !== undefined && entry.data.length > MAX_FILE_SIZE) {
    throw invalid("files over 4 GiB do not fit in a newc archive");
  }
  if (kind === "symlink") {
    const target = entry.target;
    if (typeof target !== "string" || target === "" || target.includes("\0")) throw invalid("a symlink needs a non-empty target");
    if (Buffer.byteLength(target) >= PATH_MAX) throw invalid(`the symlink target is longer than ${PATH_MAX - 1} bytes`);
  }
  if (kind === "chardev") {
    for (const n of [entry.major, entry.minor]) {
      if (!Number.isInteger(n) || n! < 0 || n! > 0xffffffff) throw invalid("a character device needs integer major and minor numbers");
    }
  }
}

async function writeEntry(writer: BufferedWriter, entry: CpioEntry, ino: number): Promise<void> {
  const base = {
    ino,
    mode: TYPE_BITS[entry.kind] | entry.mode,
    nlink: entry.kind === "dir" ? 2 : 1,
    rdevMajor: entry.kind === "chardev" ? entry.major! : 0,
    rdevMinor: entry.kind === "chardev" ? entry.minor! : 0,
    name: entry.path,
  };
  if (entry.kind === "file" && entry.source !== undefined) return copyFile(writer, entry.source, base, entry.identity);

  const data = entry.kind === "symlink" ? Buffer.from(entry.target!) : entry.kind === "file" ? entry.data! : new Uint8Array(0);
  await writer.write(header({ ...base, fileSize: data.length }));
  await writer.write(data);
  await writer.write(padding(data.length));
}

async function copyFile(writer: BufferedWriter, source: string, base: Omit<HeaderFields, "fileSize">, identity?: CpioEntry["identity"]): Promise<void> {
  let input: FileHandle;
  try {
    input = await open(source, "r");
  } catch (e) {
    throw userError("CPIO_SOURCE_UNREADABLE", `Cannot read ${source} (for ${base.name} in the image): ${(e as Error).message}`, "Check that the file exists and is readable.");
  }
  try {
    const stats = await input.stat();
    if (!stats.isFile()) throw userError("CPIO_SOURCE_UNREADABLE", `${source} (for ${base.name} in the image) is not a regular file`, "Point the entry at a file, or make it a dir or symlink entry.");
    if (identity && (stats.dev !== identity.dev || stats.ino !== identity.ino)) {
      throw userError("CPIO_SOURCE_CHANGED", `${source} (for ${base.name} in the image) is no longer the file that was checked`, "Build again once nothing changes the app's files.");
    }
    if (stats.size > MAX_FILE_SIZE) throw userError("CPIO_FILE_TOO_LARGE", `${source} is ${stats.size} bytes; a newc archive holds files up to 4 GiB`, "Leave this file out of the initramfs.");
    const size = stats.size;
    await writer.write(header({ ...base, fileSize: size }));
    const chunk = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(size, 1)));
    let copied = 0;
    while (copied < size) {
      const { bytesRead } = await input.read(chunk, 0, Math.min(chunk.length, size - copied), copied);
      // The header already promised `size` bytes; a short file would corrupt every entry after it.
      if (bytesRead === 0) throw systemError("CPIO_SOURCE_CHANGED", `${source} shrank while it was being archived`, "Make sure nothing modifies the app's files during the build, then retry.");
      await writer.write(chunk.subarray(0, bytesRead));
      copied += bytesRead;
    }
    await writer.write(padding(size));
  } finally {
    await input.close();
  }
}

type HeaderFields = { ino: number; mode: number; nlink: number; fileSize: number; rdevMajor: number; rdevMinor: number; name: string };

/** The 110-byte ASCII header, the NUL-terminated name, and padding to a 4-byte boundary. */
function header(f: HeaderFields): Buffer {
  const name = Buffer.from(f.name + "\0");
  const fields = [
    f.ino,
    f.mode,
    0, // uid
    0, // gid
    f.nlink,
    0, // mtime
    f.fileSize,
    0, // devmajor: the archive is not tied to any host filesystem
    0, // devminor
    f.rdevMajor,
    f.rdevMinor,
    name.length,
    0, // check: only used by the 070702 "crc" variant
  ];
  const text = "070701" + fields.map((n) => n.toString(16).toUpperCase().padStart(8, "0")).join("");
  return Buffer.concat([Buffer.from(text, "latin1"), name, padding(text.length + name.length)]);
}

function padding(length: number): Uint8Array {
  return new Uint8Array((4 - (length % 4)) % 4);
}

/**
 * Collects small writes (headers, names, padding, small files) so an archive of thousands of tiny
 * files does not cost a syscall per field; large chunks go straight to the file after a flush.
 */
class BufferedWriter {
  private readonly buffer = Buffer.allocUnsafe(COPY_CHUNK);
  private used = 0;
  bytes = 0;

  constructor(private readonly fh: FileHandle) {}

  /** Callers may reuse `data` as soon as this resolves. */
  async write(data: Uint8Array): Promise<void> {
    if (data.length > this.buffer.length - this.used) await this.flush();
    if (data.length >= this.buffer.length) await this.writeAll(data);
    else {
      this.buffer.set(data, this.used);
      this.used += data.length;
    }
    this.bytes += data.length;
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    await this.writeAll(this.buffer.subarray(0, this.used));
    this.used = 0;
  }

  private async writeAll(data: Uint8Array): Promise<void> {
    let written = 0;
    while (written < data.length) written += (await this.fh.write(data, written, data.length - written)).bytesWritten;
  }
}
