import { closeSync, openSync, readSync, statSync } from "node:fs";
import path from "node:path";
import type { Ctx } from "./context.ts";
import { readString, type Entry } from "./read.ts";
import type { AppManifest } from "./types.ts";

export const ENTRY_EXTENSIONS = [".ts", ".mts", ".js", ".mjs"];

/** What the VM runs: a JS/TS entry bundled at build time, or a prebuilt Linux program. */
export function readSource(ctx: Ctx, entry: Entry | undefined, binary: Entry | undefined): AppManifest["source"] | undefined {
  if (entry && binary) {
    const later = ctx.lineOf(binary.keyNode) >= ctx.lineOf(entry.keyNode) ? binary : entry;
    ctx.report(later.keyNode, later.at, "entry and binary cannot both be set",
      "keep entry for a JavaScript/TypeScript app, or binary for a prebuilt Linux program");
    return undefined;
  }
  if (entry) return readEntry(ctx, entry);
  if (binary) return readBinary(ctx, binary);
  ctx.report(undefined, "", "neither entry nor binary is set",
    "add entry: pointing at your app's .ts/.js file, or binary: pointing at a Linux program");
  return undefined;
}

function readEntry(ctx: Ctx, { value, at }: Entry): AppManifest["source"] | undefined {
  const rel = readPath(ctx, value, at);
  if (rel === undefined) return undefined;
  if (path.isAbsolute(rel)) {
    ctx.report(value, at, `"${rel}" is absolute, but entry must be relative to the manifest's directory`,
      `write it relative to ${ctx.dir}, e.g. "src/main.ts"`);
    return undefined;
  }
  if (!ENTRY_EXTENSIONS.includes(path.extname(rel))) {
    ctx.report(value, at, `"${rel}" is not a JavaScript or TypeScript file`,
      `entry must end in ${ENTRY_EXTENSIONS.join(", ")}; to run anything else, build a Linux program and use binary:`);
    return undefined;
  }
  const abs = path.resolve(ctx.dir, rel);
  return checkIsFile(ctx, value, at, rel, abs) ? { kind: "entry", path: abs } : undefined;
}

function readBinary(ctx: Ctx, { value, at }: Entry): AppManifest["source"] | undefined {
  const rel = readPath(ctx, value, at);
  if (rel === undefined) return undefined;
  const abs = path.resolve(ctx.dir, rel);
  if (!checkIsFile(ctx, value, at, rel, abs)) return undefined;
  const wrongFormat = notElfReason(abs);
  if (wrongFormat) {
    ctx.report(value, at, `"${rel}" ${wrongFormat.message}`, wrongFormat.hint);
    return undefined;
  }
  return { kind: "binary", path: abs };
}

function readPath(ctx: Ctx, node: unknown, at: string): string | undefined {
  const text = readString(ctx, node, at, "a file path");
  if (text === undefined) return undefined;
  if (text.trim() === "") {
    ctx.report(node, at, "the path is empty");
    return undefined;
  }
  // No file has one, and the file system calls below would throw on it rather than answer.
  if (text.includes("\0")) {
    ctx.report(node, at, "the path contains a NUL character", "remove the \\0 from the path");
    return undefined;
  }
  return text;
}

function checkIsFile(ctx: Ctx, node: unknown, at: string, rel: string, abs: string): boolean {
  let stat;
  try {
    stat = statSync(abs, { throwIfNoEntry: false });
  } catch (e) {
    // ENAMETOOLONG, EACCES on a directory on the way, ELOOP: the path cannot be used, whatever the reason.
    ctx.report(node, at, `file "${rel}" cannot be checked (${(e as NodeJS.ErrnoException).code ?? String(e)})`, `fix the path (looked for ${abs})`);
    return false;
  }
  if (!stat) {
    ctx.report(node, at, `file "${rel}" does not exist`, `create it or fix the path (looked for ${abs})`);
    return false;
  }
  if (!stat.isFile()) {
    ctx.report(node, at, `"${rel}" is not a regular file`, `point ${at} at a file (${abs} is a directory or device)`);
    return false;
  }
  return true;
}

/** Catches the usual wrong-file mistakes early, rather than as an exec failure inside the VM. */
function notElfReason(abs: string): { message: string; hint: string } | undefined {
  let head: Buffer;
  try {
    head = readHead(abs, 4);
  } catch (e) {
    return { message: `cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, hint: "check the file's permissions" };
  }
  if (head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return undefined;
  const linux = "rebuild it for Linux (e.g. GOOS=linux go build)";
  if (head.subarray(0, 2).toString("latin1") === "#!") {
    return { message: "is a script, not a compiled program", hint: "use entry: for JavaScript/TypeScript, or point binary at a compiled Linux program" };
  }
  const magic = head.length === 4 ? head.readUInt32BE(0) : 0;
  if ([0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe, 0xcafebabe].includes(magic)) {
    return { message: "is a macOS (Mach-O) program, not a Linux one", hint: linux };
  }
  if (head.subarray(0, 2).toString("latin1") === "MZ") return { message: "is a Windows program, not a Linux one", hint: linux };
  return { message: "is not a Linux program (no ELF header)", hint: linux };
}

function readHead(file: string, bytes: number): Buffer {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(bytes);
    return buf.subarray(0, readSync(fd, buf, 0, bytes, 0));
  } finally {
    closeSync(fd);
  }
}
