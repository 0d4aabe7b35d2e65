import { lstatSync, readdirSync, realpathSync, type Stats } from "node:fs";
import path from "node:path";
import { globCouldMatchBelow, globMatches, hasGlob } from "./glob.ts";

/** One file a `files:` pattern matched. */
export interface MatchedFile {
  /** Path relative to the app directory, as the pattern saw it (through symlinks inside the app). */
  rel: string;
  /** The host file to copy: every symlink resolved, always inside the app directory. */
  real: string;
  executable: boolean;
  /** The file as checked, so the copy can tell if the path was swapped since. */
  identity: FileIdentity;
}

export interface FileIdentity {
  dev: number;
  ino: number;
}

/** Why a pattern cannot be shipped; the manifest reader reports it at the pattern's line. */
export class WalkRefusal extends Error {
  constructor(message: string, readonly hint: string) {
    super(message);
  }
}

/** A walk reads at most this many directory entries, so a pattern over a huge tree fails clearly. */
export const MAX_WALKED_ENTRIES = 200_000;

/**
 * Finds the files `src` names under the app directory `appDir`: a file, a directory (everything
 * beneath it) or a glob. Refuses, with WalkRefusal, what an image must not get: a symlink whose
 * target leaves the app directory (it would copy host files the app does not own), a broken
 * symlink, and special files (devices, fifos, sockets have no contents to copy). Only what the
 * pattern reaches is looked at. The result is sorted by `rel`.
 */
export function walkPattern(appDir: string, src: string): MatchedFile[] {
  const appReal = realpathSync(appDir);
  const walker = new Walker(appReal);
  if (hasGlob(src)) {
    walker.walkDir(src, "", appReal);
  } else {
    const info = walker.follow(src, path.join(appReal, src));
    if (!info) throw new WalkRefusal(`"${src}" does not exist in the app directory`, `create it, or fix the path (looked for ${path.join(appReal, src)})`);
    if (info.stats.isDirectory()) walker.walkDir(`${src}/**`, src, info.real);
    else walker.add(src, info.real, info.stats);
  }
  return walker.found.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

class Walker {
  readonly found: MatchedFile[] = [];
  private readonly visited = new Set<string>();
  private entries = 0;

  constructor(private readonly appReal: string) {}

  walkDir(pattern: string, rel: string, real: string): void {
    if (this.visited.has(real)) return; // a symlink loop inside the app: each directory once
    this.visited.add(real);
    const names = readdirSync(real).sort();
    this.entries += names.length;
    if (this.entries > MAX_WALKED_ENTRIES) {
      throw new WalkRefusal(`the pattern "${pattern}" walks more than ${MAX_WALKED_ENTRIES} directory entries`, "name a smaller tree");
    }
    for (const name of names) {
      const childRel = rel ? `${rel}/${name}` : name;
      const matches = globMatches(pattern, childRel);
      const below = globCouldMatchBelow(pattern, childRel);
      if (!matches && !below) continue;
      const info = this.follow(childRel, path.join(real, name));
      if (!info) continue;
      if (info.stats.isDirectory()) {
        if (below) this.walkDir(pattern, childRel, info.real);
      } else if (matches) this.add(childRel, info.real, info.stats);
    }
  }

  /**
   * Follows symlinks (in the name or in any directory on its way) only to a target inside the
   * app directory. undefined: nothing is there.
   */
  follow(rel: string, abs: string): { real: string; stats: Stats } | undefined {
    if (!lstatSync(abs, { throwIfNoEntry: false })) return undefined;
    let real: string;
    try {
      real = realpathSync(abs);
    } catch {
      throw new WalkRefusal(`"${rel}" is a broken symlink`, "remove it, or point it at a file inside the app directory");
    }
    if (real !== this.appReal && !real.startsWith(`${this.appReal}/`)) {
      throw new WalkRefusal(`"${rel}" leads through a symlink to ${real}, outside the app directory`,
        "copy the file into the app directory, or leave the symlink out of the pattern");
    }
    // The real path has no symlink left in it, unless one was planted since realpath looked.
    const stats = lstatSync(real);
    if (stats.isSymbolicLink()) throw new WalkRefusal(`"${rel}" changed while it was being checked`, "build again once nothing changes the app's files");
    return { real, stats };
  }

  add(rel: string, real: string, stats: Stats): void {
    if (!stats.isFile()) {
      throw new WalkRefusal(`"${rel}" is ${specialKind(stats)}, not a regular file`, "only regular files can be shipped; leave it out of the pattern");
    }
    this.found.push({ rel, real, executable: (stats.mode & 0o111) !== 0, identity: { dev: stats.dev, ino: stats.ino } });
  }
}

function specialKind(stats: Stats): string {
  if (stats.isFIFO()) return "a fifo";
  if (stats.isSocket()) return "a socket";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  return "a special file";
}
