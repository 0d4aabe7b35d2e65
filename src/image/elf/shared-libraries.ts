/**
 * Works out which files an executable needs at run time (its dynamic loader and the transitive
 * closure of its DT_NEEDED libraries), the way ld.so would find them on this machine, so the image
 * builder can copy exactly those into the image.
 */
import { realpath, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { isPithError, userError } from "../../shared/errors.ts";
import { readElfInfo, type ElfInfo } from "./elf-file.ts";

export type ResolvedLibrary = {
  /** The name objects ask for: a DT_NEEDED entry, or the basename of PT_INTERP for the loader. */
  soname: string;
  /** Absolute host path of the file to copy, with symlinks resolved. */
  path: string;
  /** Where the file must sit in the image for ld.so to find it under `soname`. */
  installPath: string;
  /** The executable or library (host path as found, before realpath) that first needed it. */
  neededBy: string;
};

export type ResolveOptions = {
  /** Replaces the default library directories (searched after each object's RUNPATH/RPATH). */
  searchDirs?: string[];
  /**
   * Sonames the process has loaded already, for a library opened with dlopen (a Node addon in
   * node's process): ld.so reuses those, so they are neither looked up nor returned again.
   */
  loaded?: Iterable<string>;
};

/** ld.so's built-in directories plus the usual ld.so.conf ones, in the order a Debian-style host searches them. */
export const DEFAULT_LIBRARY_DIRS: readonly string[] = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib64",
  "/usr/lib64",
  "/lib",
  "/usr/lib",
  "/usr/local/lib",
];

type LoadedObject = { hostPath: string; origin: string; info: ElfInfo };

/**
 * Returns the loader first (if any), then libraries breadth-first in DT_NEEDED order, each soname
 * once; the order is deterministic for a given host. Static executables need nothing: [].
 */
export async function resolveSharedLibraries(executable: string, options: ResolveOptions = {}): Promise<ResolvedLibrary[]> {
  const defaultDirs = options.searchDirs ?? DEFAULT_LIBRARY_DIRS;
  const exeInfo = await readElfInfo(executable);
  if (exeInfo.isStatic) return [];

  const result: ResolvedLibrary[] = [];
  // Keyed by soname because that is how ld.so decides a library is already loaded: e.g. libc.so.6
  // lists ld-linux-x86-64.so.2 as DT_NEEDED, and it must match the loader rather than load twice.
  const seen = new Set<string>(options.loaded);
  // $ORIGIN of the main program is where /proc/self/exe points, i.e. its resolved path.
  const queue: LoadedObject[] = [{ hostPath: executable, origin: dirname(await realpath(executable)), info: exeInfo }];

  if (exeInfo.interpreter !== undefined) {
    const interp = exeInfo.interpreter;
    const path = await realpath(interp).catch(() => {
      throw userError(
        "ELF_INTERPRETER_NOT_FOUND",
        `${executable} needs the dynamic loader ${interp}, which does not exist on this machine`,
        "The binary was probably built for another Linux distribution or CPU architecture; build it on (or for) this machine, or link it statically.",
      );
    });
    result.push({ soname: basename(interp), path, installPath: interp, neededBy: executable });
    seen.add(basename(interp));
    queue.push({ hostPath: interp, origin: dirname(path), info: await readElfInfo(interp) });
  }

  for (let i = 0; i < queue.length; i++) {
    const object = queue[i]!;
    const searchDirs = [...expandRunpath(object.info.runpath, object.origin), ...defaultDirs];
    for (const soname of object.info.needed) {
      if (seen.has(soname)) continue;
      seen.add(soname);
      const found = await findLibrary(soname, searchDirs, object.hostPath);
      result.push({ soname, path: await realpath(found.hostPath), installPath: found.hostPath, neededBy: object.hostPath });
      // ld.so derives a library's $ORIGIN from the path it opened, without resolving symlinks.
      queue.push({ hostPath: found.hostPath, origin: dirname(found.hostPath), info: found.info });
    }
  }
  return result;
}

async function findLibrary(soname: string, searchDirs: readonly string[], neededBy: string): Promise<{ hostPath: string; info: ElfInfo }> {
  // A DT_NEEDED with a slash is a path, not a name to search for.
  const candidates = soname.includes("/") ? [resolve(soname)] : searchDirs.map((dir) => join(dir, soname));
  for (const candidate of candidates) {
    if (!(await isFile(candidate))) continue;
    try {
      return { hostPath: candidate, info: await readElfInfo(candidate) };
    } catch (e) {
      // Like ld.so, pass over files of the wrong kind (e.g. a 32-bit library in /usr/lib) and keep looking.
      if (isPithError(e) && e.code === "ELF_UNSUPPORTED") continue;
      throw e;
    }
  }
  const searched = soname.includes("/") ? "" : ` Searched: ${searchDirs.join(", ")}.`;
  throw userError(
    "ELF_LIBRARY_NOT_FOUND",
    `Cannot find shared library ${soname}, needed by ${neededBy}`,
    `Install the package that provides ${soname} on this machine, or link the program statically.${searched}`,
  );
}

/**
 * Expands $ORIGIN in RUNPATH/RPATH entries. Entries using other tokens ($LIB, $PLATFORM) or left
 * relative (meaning ld.so's current directory) depend on the host at run time, so they are dropped.
 */
function expandRunpath(entries: string[], origin: string): string[] {
  const dirs: string[] = [];
  for (const entry of entries) {
    const expanded = entry.replace(/\$ORIGIN(?![A-Za-z0-9_])|\$\{ORIGIN\}/g, origin);
    if (expanded.includes("$") || !isAbsolute(expanded)) continue;
    dirs.push(join(expanded));
  }
  return dirs;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
