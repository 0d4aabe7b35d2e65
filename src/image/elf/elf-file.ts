/**
 * A minimal ELF64 little-endian reader: just enough to learn which dynamic loader and shared
 * libraries an executable needs, so the image builder can copy them in.
 *
 * It reads only the ELF header, the program headers, the dynamic segment and the handful of
 * strings it needs, with positional reads, because the files it reads (node is ~100 MB, its
 * .dynstr alone ~5 MB) are too big to load whole for this.
 */
import { open, type FileHandle } from "node:fs/promises";
import { userError, type PithError } from "../../shared/errors.ts";

export type ElfInfo = {
  /** PT_INTERP: the dynamic loader the kernel runs, e.g. "/lib64/ld-linux-x86-64.so.2". */
  interpreter: string | undefined;
  /** DT_NEEDED entries, in file order (which is the order ld.so loads them). */
  needed: string[];
  /** DT_RUNPATH, or DT_RPATH when there is no DT_RUNPATH, split on ':' (unexpanded, may hold $ORIGIN). */
  runpath: string[];
  /** No PT_INTERP and no PT_DYNAMIC: nothing to resolve at run time. */
  isStatic: boolean;
};

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;

const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

const ELF_HEADER_SIZE = 64;
const PHDR_SIZE = 56;
const DYN_SIZE = 16;
/** e_phnum value meaning "the real count is in section header 0's sh_info". */
const PN_XNUM = 0xffff;
/** PT_INTERP is a path; anything longer than PATH_MAX is corrupt, not a path. */
const MAX_INTERP = 4096;
/** Dynamic segments hold a few dozen entries; this bounds what a corrupt header can make us read. */
const MAX_DYNAMIC = 1 << 20;

const SUPPORTED = "Pith supports 64-bit little-endian ELF binaries (e.g. Linux x86-64 or arm64)";

type ProgramHeader = { type: number; offset: number; vaddr: number; filesz: number };

export async function readElfInfo(path: string): Promise<ElfInfo> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw userError("ELF_NOT_FOUND", `${path} does not exist`, "Check the path of the executable or library.");
    throw userError("ELF_UNREADABLE", `Cannot open ${path}: ${(e as Error).message}`, "Check that the file exists and is readable.");
  }
  try {
    const stats = await fh.stat();
    // Opening a directory read-only succeeds on Linux; reading it is what fails.
    if (!stats.isFile()) throw userError("ELF_UNSUPPORTED", `${path} is ${stats.isDirectory() ? "a directory" : "not a regular file"}, not an ELF binary`, SUPPORTED + ".");
    const reader = new Reader(fh, path, stats.size);
    return await parse(reader);
  } finally {
    await fh.close();
  }
}

async function parse(r: Reader): Promise<ElfInfo> {
  const ident = await r.readUpTo(0, ELF_HEADER_SIZE);
  checkIdent(ident, r.path);
  if (ident.length < ELF_HEADER_SIZE) throw r.truncated("the ELF header");

  const phoff = r.u64(ident, 0x20, "e_phoff");
  const shoff = r.u64(ident, 0x28, "e_shoff");
  const phentsize = ident.readUInt16LE(0x36);
  let phnum = ident.readUInt16LE(0x38);
  if (phnum === PN_XNUM) {
    // Only binaries with 65535+ segments do this, but it costs one read to be correct.
    const sh0 = await r.readExactly(shoff, 64, "section header 0");
    phnum = sh0.readUInt32LE(44);
  }
  if (phnum > 0 && phentsize < PHDR_SIZE) throw r.malformed(`program header entry size ${phentsize} is smaller than ${PHDR_SIZE}`);

  const table = await r.readExactly(phoff, phnum * phentsize, "the program headers");
  const headers: ProgramHeader[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = i * phentsize;
    headers.push({
      type: table.readUInt32LE(at),
      offset: r.u64(table, at + 8, "p_offset"),
      vaddr: r.u64(table, at + 16, "p_vaddr"),
      filesz: r.u64(table, at + 32, "p_filesz"),
    });
  }

  const interpHeader = headers.find((h) => h.type === PT_INTERP);
  const dynamicHeader = headers.find((h) => h.type === PT_DYNAMIC);

  let interpreter: string | undefined;
  if (interpHeader) {
    if (interpHeader.filesz > MAX_INTERP) throw r.malformed(`PT_INTERP is ${interpHeader.filesz} bytes long`);
    const raw = await r.readExactly(interpHeader.offset, interpHeader.filesz, "the PT_INTERP path");
    const nul = raw.indexOf(0);
    interpreter = raw.subarray(0, nul === -1 ? raw.length : nul).toString("utf8");
    if (interpreter === "") throw r.malformed("PT_INTERP is empty");
  }

  const info: ElfInfo = { interpreter, needed: [], runpath: [], isStatic: !interpHeader && !dynamicHeader };
  if (!dynamicHeader) return info;

  if (dynamicHeader.filesz > MAX_DYNAMIC) throw r.malformed(`PT_DYNAMIC is ${dynamicHeader.filesz} bytes long`);
  const dyn = await r.readExactly(dynamicHeader.offset, dynamicHeader.filesz, "the dynamic section");

  // Collect offsets first: DT_STRTAB may come after the entries that point into it.
  const neededOffsets: bigint[] = [];
  let runpathOffset: bigint | undefined;
  let rpathOffset: bigint | undefined;
  let strtab: bigint | undefined;
  let strsz: bigint | undefined;
  for (let at = 0; at + DYN_SIZE <= dyn.length; at += DYN_SIZE) {
    const tag = dyn.readBigInt64LE(at);
    const val = dyn.readBigUInt64LE(at + 8);
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED) neededOffsets.push(val);
    else if (tag === DT_STRTAB) strtab = val;
    else if (tag === DT_STRSZ) strsz = val;
    else if (tag === DT_RUNPATH) runpathOffset = val;
    else if (tag === DT_RPATH) rpathOffset = val;
  }

  // ld.so ignores DT_RPATH when DT_RUNPATH is present.
  const searchOffset = runpathOffset ?? rpathOffset;
  if (neededOffsets.length === 0 && searchOffset === undefined) return info;
  if (strtab === undefined) throw r.malformed("the dynamic section has DT_NEEDED or DT_RUNPATH entries but no DT_STRTAB");

  const strtabOffset = vaddrToOffset(headers, r.safe(strtab, "DT_STRTAB"));
  if (strtabOffset === undefined) throw r.malformed(`DT_STRTAB address 0x${strtab.toString(16)} is not inside any PT_LOAD segment`);
  const strtabSize = strsz === undefined ? r.size - strtabOffset : r.safe(strsz, "DT_STRSZ");
  const readString = (offset: bigint, what: string) => r.readCString(strtabOffset, strtabSize, r.safe(offset, what), what);

  for (const offset of neededOffsets) info.needed.push(await readString(offset, "a DT_NEEDED name"));
  if (searchOffset !== undefined) {
    const joined = await readString(searchOffset, runpathOffset !== undefined ? "DT_RUNPATH" : "DT_RPATH");
    // Empty entries would mean "the current directory" to ld.so, which has no meaning in an image.
    info.runpath = joined.split(":").filter((dir) => dir !== "");
  }
  return info;
}

function checkIdent(ident: Buffer, path: string): void {
  const isElf = ident.length >= 4 && ident[0] === 0x7f && ident[1] === 0x45 && ident[2] === 0x4c && ident[3] === 0x46;
  if (!isElf) {
    const what = ident.length === 0 ? "an empty file"
      : ident.subarray(0, 2).toString("latin1") === "#!" ? `a script (${firstLine(ident)})`
      : "not an ELF binary";
    throw userError("ELF_UNSUPPORTED", `${path} is ${what}`, `${SUPPORTED}; point Pith at the compiled executable or library itself.`);
  }
  if (ident.length < 6) throw userError("ELF_TRUNCATED", `${path} is a truncated ELF file (${ident.length} bytes)`, "The file is damaged or was cut short; rebuild or reinstall it.");
  const elfClass = ident[4];
  const data = ident[5];
  if (elfClass !== 2) {
    const what = elfClass === 1 ? "a 32-bit ELF binary" : `an ELF binary of unknown class ${elfClass}`;
    throw userError("ELF_UNSUPPORTED", `${path} is ${what}`, `${SUPPORTED}; use a 64-bit build.`);
  }
  if (data !== 1) {
    const what = data === 2 ? "a big-endian ELF binary" : `an ELF binary of unknown byte order ${data}`;
    throw userError("ELF_UNSUPPORTED", `${path} is ${what}`, `${SUPPORTED}; use a little-endian build.`);
  }
}

function firstLine(buf: Buffer): string {
  const text = buf.toString("latin1");
  const end = text.indexOf("\n");
  return (end === -1 ? text : text.slice(0, end)).trim();
}

/** DT_STRTAB holds a run-time address; the file offset comes from the PT_LOAD segment that maps it. */
function vaddrToOffset(headers: ProgramHeader[], vaddr: number): number | undefined {
  for (const h of headers) {
    if (h.type === PT_LOAD && vaddr >= h.vaddr && vaddr < h.vaddr + h.filesz) return h.offset + (vaddr - h.vaddr);
  }
  return undefined;
}

/** Positional reads that turn short reads and absurd numbers into PithErrors naming the file. */
class Reader {
  constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly size: number,
  ) {}

  async readUpTo(position: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await this.fh.read(buf, filled, length - filled, position + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buf.subarray(0, filled);
  }

  async readExactly(position: number, length: number, what: string): Promise<Buffer> {
    if (position + length > this.size) throw this.truncated(what);
    const buf = await this.readUpTo(position, length);
    if (buf.length < length) throw this.truncated(what);
    return buf;
  }

  /** Reads a NUL-terminated string at `offset` within the string table, in small chunks. */
  async readCString(tableOffset: number, tableSize: number, offset: number, what: string): Promise<string> {
    if (offset >= tableSize) throw this.malformed(`${what} points outside the string table`);
    const parts: Buffer[] = [];
    const end = Math.min(tableOffset + tableSize, this.size);
    for (let pos = tableOffset + offset; pos < end; ) {
      const chunk = await this.readUpTo(pos, Math.min(256, end - pos));
      if (chunk.length === 0) break;
      const nul = chunk.indexOf(0);
      if (nul !== -1) {
        parts.push(chunk.subarray(0, nul));
        return Buffer.concat(parts).toString("utf8");
      }
      parts.push(chunk);
      pos += chunk.length;
    }
    throw tableOffset + tableSize > this.size ? this.truncated(what) : this.malformed(`${what} is not NUL-terminated`);
  }

  u64(buf: Buffer, at: number, what: string): number {
    return this.safe(buf.readBigUInt64LE(at), what);
  }

  /** File offsets and sizes must fit a JS number; anything beyond 2^53 is corruption anyway. */
  safe(value: bigint, what: string): number {
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw this.malformed(`${what} is 0x${value.toString(16)}, far beyond any real file`);
    return Number(value);
  }

  truncated(what: string): PithError {
    return userError(
      "ELF_TRUNCATED",
      `${this.path} is a truncated ELF file: ${what} extends past its end (${this.size} bytes)`,
      "The file is damaged or was cut short (an interrupted download or copy?); rebuild or reinstall it.",
    );
  }

  malformed(detail: string): PithError {
    return userError("ELF_MALFORMED", `${this.path} is not a valid ELF file: ${detail}`, "The file is damaged; rebuild or reinstall it.");
  }
}
