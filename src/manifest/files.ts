import path from "node:path";
import { isMap } from "yaml";
import { GUEST_APP_DIR, GUEST_APP_MODULE, reservedDestinationReason } from "../image/guest-paths.ts";
import type { Ctx, YNode } from "./context.ts";
import { walkPattern, WalkRefusal, type MatchedFile } from "./file-walk.ts";
import { globBase, hasGlob } from "./glob.ts";
import { readList, readMap, readString, type Entry, type Item } from "./read.ts";
import type { AppManifest, DeclaredFile } from "./types.ts";

/** Bounds on what one manifest may ship, so a mistaken `**` fails clearly rather than slowly. */
export const MAX_DECLARED_FILES = 20_000;
const MAX_PATTERN_LENGTH = 1024;
/** Each `**` multiplies the work of matching a path; a few are all a pattern needs. */
const MAX_DOUBLE_STARS = 4;

const ITEM_HINT = 'write a path or glob relative to the app, e.g. - config/app.conf, or - { src: "static/**", dest: /srv/static }';

/**
 * `files:` in pith.yaml: files copied from the app directory into the image, read-only. Each item
 * is a path or glob relative to the app directory, or `{ src, dest }`:
 *   - config/app.conf                      -> /app/config/app.conf (the app's working directory)
 *   - { src: config/app.conf, dest: /etc/app.conf }   one file to an exact path
 *   - { src: "static/**", dest: /srv/static }         a glob or directory below a directory:
 *     each match keeps its path under the pattern's fixed part (static/css/a.css -> /srv/static/css/a.css)
 * Every problem is reported at its item's line: a pattern matching nothing, a path leaving the
 * app directory, a symlink whose target does, a special file, a destination over Pith's own files
 * or listed twice. The files are found now, so a bad pattern stops before anything is built.
 */
export function readFiles(ctx: Ctx, { value, at }: Entry, source: AppManifest["source"]): DeclaredFile[] | undefined {
  const items = readList(ctx, value, at, "a list of paths or globs", ITEM_HINT);
  if (!items) return undefined;
  const appPath = source.kind === "entry" ? GUEST_APP_MODULE : `${GUEST_APP_DIR}/${path.basename(source.path)}`;
  const runtime = source.kind === "entry" ? "node" : "native";
  const files: DeclaredFile[] = [];
  const byDest = new Map<string, DeclaredFile>();
  let ok = true;
  for (const item of items) {
    const declared = readItem(ctx, item);
    if (!declared) {
      ok = false;
      continue;
    }
    const line = ctx.lineOf(item.node);
    for (const file of declared.files) {
      const reserved = reservedDestinationReason(file.dest, appPath, runtime);
      const earlier = byDest.get(file.dest);
      const problem = reserved
        ? { message: `"${file.from}" would go to ${file.dest}, but ${reserved}`, hint: "choose another dest" }
        : earlier
          ? { message: `${file.dest} would get both "${earlier.from}" (line ${earlier.line}) and "${file.from}"`, hint: "give one of them another dest" }
          : undefined;
      if (problem) {
        ctx.report(declared.node, item.at, problem.message, problem.hint);
        ok = false;
        break;
      }
      const shipped = { ...file, line };
      byDest.set(file.dest, shipped);
      files.push(shipped);
    }
  }
  if (!ok) return undefined;
  if (files.length > MAX_DECLARED_FILES) {
    ctx.report(value, at, `${files.length} files declared (at most ${MAX_DECLARED_FILES})`, "ship fewer, larger files (an archive the app unpacks)");
    return undefined;
  }
  return checkNoFileIsADirectory(ctx, value, at, files) ? files : undefined;
}

/** A file at /srv/a and another at /srv/a/b cannot both exist. */
function checkNoFileIsADirectory(ctx: Ctx, node: YNode, at: string, files: DeclaredFile[]): boolean {
  const dests = new Map(files.map((f) => [f.dest, f]));
  for (const file of files) {
    for (let dir = path.posix.dirname(file.dest); dir !== "/"; dir = path.posix.dirname(dir)) {
      const clash = dests.get(dir);
      if (!clash) continue;
      ctx.report(node, at, `${dir} would be a file ("${clash.from}", line ${clash.line}) and a directory holding "${file.from}" (line ${file.line})`,
        "give one of them another dest");
      return false;
    }
  }
  return true;
}

type Unplaced = Omit<DeclaredFile, "line">;

function readItem(ctx: Ctx, { node, at }: Item): { files: Unplaced[]; node: YNode } | undefined {
  let srcNode: YNode = node;
  let srcAt = at;
  let destNode: YNode | undefined;
  if (isMap(node)) {
    const fields = readMap(ctx, node, at, ["src", "dest"]);
    if (!fields) return undefined;
    const src = fields.get("src");
    if (!src) {
      ctx.report(node, at, "src is missing", ITEM_HINT);
      return undefined;
    }
    ({ value: srcNode, at: srcAt } = src);
    destNode = fields.get("dest")?.value;
  }
  const src = readSrc(ctx, srcNode, srcAt);
  const dest = destNode === undefined ? undefined : readDest(ctx, destNode, `${at}.dest`);
  if (src === undefined || (destNode !== undefined && dest === undefined)) return undefined;

  let matched: MatchedFile[];
  try {
    matched = walkPattern(ctx.dir, src);
  } catch (e) {
    if (e instanceof WalkRefusal) ctx.report(srcNode, srcAt, e.message, e.hint);
    else ctx.report(srcNode, srcAt, `"${src}" cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, "check the files' permissions");
    return undefined;
  }
  if (matched.length === 0) {
    ctx.report(srcNode, srcAt, `"${src}" matches no file`, `check the pattern against the files under ${path.join(ctx.dir, globBase(src))}`);
    return undefined;
  }
  return { files: matched.map((m) => placeFile(m, src, dest)), node: srcNode };
}

/**
 * Where a match goes. Without dest, to the same relative path under /app. With dest, a single file
 * goes to dest itself (or into it, when dest ends in "/"); a glob or directory's matches go below
 * dest, keeping their path under the pattern's fixed part.
 */
function placeFile(file: MatchedFile, src: string, dest: { path: string; isDir: boolean } | undefined): Unplaced {
  const from = file.rel;
  const base = { from, source: file.real, executable: file.executable, identity: file.identity };
  if (!dest) return { ...base, dest: `${GUEST_APP_DIR}/${from}` };
  const single = !hasGlob(src) && from === src;
  if (single) return { ...base, dest: dest.isDir ? path.posix.join(dest.path, path.posix.basename(from)) : dest.path };
  const fixed = hasGlob(src) ? globBase(src) : src;
  return { ...base, dest: path.posix.join(dest.path, fixed ? from.slice(fixed.length + 1) : from) };
}

function readSrc(ctx: Ctx, node: YNode, at: string): string | undefined {
  const text = readString(ctx, node, at, "a path or glob");
  if (text === undefined) return undefined;
  const refuse = (message: string, hint: string): undefined => {
    ctx.report(node, at, message, hint);
    return undefined;
  };
  if (text.trim() === "") return refuse("the path is empty", ITEM_HINT);
  if (text.includes("\0")) return refuse("the path contains a NUL character", "remove the \\0 from the path");
  if (text.length > MAX_PATTERN_LENGTH) return refuse(`the path is longer than ${MAX_PATTERN_LENGTH} characters`, "shorten it");
  if (path.isAbsolute(text)) {
    return refuse(`"${text}" is absolute, but files are copied from the app directory`, `write it relative to ${ctx.dir}; use dest: for where it goes in the image`);
  }
  const normal = path.posix.normalize(text).replace(/\/+$/, "");
  if (normal === ".." || normal.startsWith("../")) {
    return refuse(`"${text}" leads out of the app directory`, `only files under ${ctx.dir} can be shipped; copy the file into it`);
  }
  if (normal === ".") return refuse(`"${text}" is the whole app directory`, "name the files or directories to ship");
  if (normal.split("/").filter((p) => p === "**").length > MAX_DOUBLE_STARS) {
    return refuse(`"${text}" has more than ${MAX_DOUBLE_STARS} "**"`, "one ** reaches every depth");
  }
  return normal;
}

function readDest(ctx: Ctx, node: YNode, at: string): { path: string; isDir: boolean } | undefined {
  const text = readString(ctx, node, at, "an absolute path in the image");
  if (text === undefined) return undefined;
  const refuse = (message: string, hint: string): undefined => {
    ctx.report(node, at, message, hint);
    return undefined;
  };
  if (text.includes("\0")) return refuse("the path contains a NUL character", "remove the \\0 from the path");
  if (text.length > MAX_PATTERN_LENGTH) return refuse(`the path is longer than ${MAX_PATTERN_LENGTH} characters`, "shorten it");
  if (!text.startsWith("/")) return refuse(`dest "${text}" is not absolute`, `write where it goes in the image, e.g. /srv/${text}`);
  if (text.split("/").some((p) => p === ".." || p === ".")) return refuse(`dest "${text}" has a "." or ".." component`, "write the path without them");
  const normal = path.posix.normalize(text);
  if (normal === "/") return refuse("dest is the image's root", "choose a directory, e.g. /srv");
  return { path: normal.replace(/\/+$/, ""), isDir: text.endsWith("/") };
}
