import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { isBuiltin } from "node:module";
import path from "node:path";
import { userError } from "../shared/errors.ts";

/**
 * Node packages that cannot be bundled, and the pruned node_modules tree that carries them into
 * an image: each such package with its own dependencies (package.json's `dependencies` and the
 * `optionalDependencies` that are installed), and nothing else.
 */

/** A package the bundle leaves external: imported by name at run time. */
export interface ExternalPackage {
  name: string;
  /** Its directory on the host, symlinks resolved. */
  dir: string;
}

/** One file of the shipped tree. */
export interface PackageFile {
  /** Path under node_modules, e.g. "better-sqlite3/lib/index.js". */
  rel: string;
  source: string;
  executable: boolean;
  size: number;
  /** The file as checked: the disk builder copies it only if the path still leads to it. */
  identity: { dev: number; ino: number };
}

/** The package a bare import names ("pkg" of "pkg/sub", "@scope/pkg" of "@scope/pkg/sub"), or undefined. */
export function packageNameOf(specifier: string): string | undefined {
  if (isBuiltin(specifier) || specifier.startsWith(".") || specifier.startsWith("/")) return undefined;
  const parts = specifier.split("/");
  const name = specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  return name && !name.endsWith("/") ? name : undefined;
}

/** Node's lookup of a package from a directory: node_modules/<name> there, then in each parent. */
export function findPackageDir(name: string, fromDir: string): string | undefined {
  for (let d = fromDir; ; d = path.dirname(d)) {
    const candidate = path.join(d, "node_modules", name);
    if (existsSync(path.join(candidate, "package.json"))) return realpathSync(candidate);
    if (path.dirname(d) === d) return undefined;
  }
}

/** Bounds on one package's walk, so a package with a huge tree fails clearly instead of slowly. */
const MAX_PACKAGE_ENTRIES = 50_000;
const nativeCache = new Map<string, boolean>();

/** A native addon: a `binding.gyp` (node-gyp builds it) or any compiled `.node` file. */
export function isNativePackage(dir: string): boolean {
  let known = nativeCache.get(dir);
  if (known === undefined) {
    known = existsSync(path.join(dir, "binding.gyp")) || containsAddon(dir);
    nativeCache.set(dir, known);
  }
  return known;
}

/**
 * Looks for a `.node` file in a package's own tree (not its node_modules, not through symlinks),
 * stopping at the first. Every package the app imports is asked, so a huge one (typescript has
 * thousands of files) is looked at only so far: past the bound it counts as plain JavaScript,
 * and declaring it in node.external is the way to ship it.
 */
function containsAddon(root: string): boolean {
  const pending = [root];
  let entries = 0;
  while (pending.length > 0 && entries < MAX_PACKAGE_ENTRIES) {
    const dir = pending.pop()!;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      entries++;
      if (entry.isFile() && entry.name.endsWith(".node")) return true;
      if (entry.isDirectory() && !(dir === root && entry.name === "node_modules")) pending.push(path.join(dir, entry.name));
    }
  }
  return false;
}

/**
 * What of a package is never needed at run time: node-gyp's build tree except the addons it
 * produced (the copies in its intermediate obj directories too), and C/C++ sources, headers,
 * objects and build files (better-sqlite3 carries 9.9 MB of SQLite's C source and 17 MB of build
 * output beside its 2 MB addon).
 */
export function isBuildLeftover(relInPackage: string): boolean {
  if (relInPackage.startsWith("build/") && (!relInPackage.endsWith(".node") || /\/(obj|obj\.target|\.deps)\//.test(relInPackage))) return true;
  const base = path.posix.basename(relInPackage);
  return base === "Makefile" || /\.(c|cc|cpp|cxx|h|hh|hpp|hxx|o|a|obj|lib|gyp|gypi|mk|d|tlog)$/i.test(base);
}

/**
 * Every file of the external packages and their dependencies, under the paths Node will look for
 * them: each external at node_modules/<name>; a dependency nested in its dependent's own
 * node_modules stays nested there, any other goes to the top level, where Node's lookup from the
 * dependent also finds it. Sorted by path.
 */
export function planNodeModules(externals: ExternalPackage[]): PackageFile[] {
  const placed = new Map<string, string>(); // rel under node_modules -> host dir
  const files: PackageFile[] = [];
  const place = (rel: string, dir: string, why: string): boolean => {
    const existing = placed.get(rel);
    if (existing === dir) return false;
    if (existing !== undefined) {
      throw userError("NODE_PACKAGE_CONFLICT", `node_modules/${rel} would be both ${existing} and ${dir} (${why})`,
        "install one version of the package (npm dedupe), or bundle one of its users");
    }
    placed.set(rel, dir);
    return true;
  };
  const queue: { rel: string; dir: string }[] = [];
  for (const external of externals) {
    if (place(external.name, external.dir, "imported by the app")) queue.push({ rel: external.name, dir: external.dir });
  }
  for (let i = 0; i < queue.length; i++) {
    const { rel, dir } = queue[i]!;
    for (const file of packageFiles(dir, "")) files.push({ ...file, rel: `${rel}/${file.rel}` });
    for (const dep of dependenciesOf(dir)) {
      const depDir = findPackageDir(dep.name, dir);
      if (!depDir) {
        if (dep.optional) continue;
        throw userError("NODE_PACKAGE_MISSING", `${dep.name}, a dependency of ${dir}, is not installed`, "run npm install in the app's directory");
      }
      const nested = depDir.startsWith(`${dir}/node_modules/`);
      const depRel = nested ? `${rel}/node_modules/${dep.name}` : dep.name;
      if (place(depRel, depDir, `a dependency of node_modules/${rel}`)) queue.push({ rel: depRel, dir: depDir });
    }
  }
  return files.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

function dependenciesOf(dir: string): { name: string; optional: boolean }[] {
  let manifest: { dependencies?: unknown; optionalDependencies?: unknown };
  try {
    manifest = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as typeof manifest;
  } catch (e) {
    throw userError("NODE_PACKAGE_INVALID", `cannot read ${path.join(dir, "package.json")}: ${(e as Error).message}`, "reinstall the package");
  }
  const names = (field: unknown): string[] =>
    field && typeof field === "object" && !Array.isArray(field) ? Object.keys(field).filter((n) => packageNameOf(n) === n) : [];
  const optional = new Set(names(manifest.optionalDependencies));
  const all = new Set([...names(manifest.dependencies), ...optional]);
  return [...all].sort().map((name) => ({ name, optional: optional.has(name) && !names(manifest.dependencies).includes(name) }));
}

/**
 * A package's own files (not its node_modules, which hold its dependencies), without build
 * leftovers. A symlink is followed only inside the package; one leading out of it, and any
 * special file, is refused: the image gets the package, never other host files.
 */
function packageFiles(root: string, rel: string, counter = { entries: 0 }): PackageFile[] {
  const dir = path.join(root, rel);
  const names = readdirSync(dir).sort();
  counter.entries += names.length;
  if (counter.entries > MAX_PACKAGE_ENTRIES) {
    throw userError("NODE_PACKAGE_TOO_LARGE", `${root} has more than ${MAX_PACKAGE_ENTRIES} files`, "bundle it instead, or prune the package");
  }
  const files: PackageFile[] = [];
  for (const name of names) {
    const childRel = rel ? `${rel}/${name}` : name;
    if (childRel === "node_modules") continue;
    if (isBuildLeftover(childRel) && !lstatSync(path.join(root, childRel)).isDirectory()) continue;
    const abs = path.join(root, childRel);
    let stats = lstatSync(abs);
    let source = abs;
    if (stats.isSymbolicLink()) {
      const real = (() => {
        try {
          return realpathSync(abs);
        } catch {
          throw userError("NODE_PACKAGE_UNSAFE", `${abs} is a broken symlink`, "reinstall the package");
        }
      })();
      if (!real.startsWith(`${root}/`)) {
        throw userError("NODE_PACKAGE_UNSAFE", `${abs} is a symlink to ${real}, outside its package`, "reinstall the package; Pith ships a package's own files only");
      }
      stats = lstatSync(real);
      source = real;
      if (stats.isDirectory()) continue; // its contents are reached through their real path
    }
    if (stats.isDirectory()) files.push(...packageFiles(root, childRel, counter));
    else if (stats.isFile()) files.push({ rel: childRel, source, executable: (stats.mode & 0o111) !== 0, size: stats.size, identity: { dev: stats.dev, ino: stats.ino } });
    else throw userError("NODE_PACKAGE_UNSAFE", `${abs} is a special file`, "remove it from the package; only regular files are shipped");
  }
  return files;
}
