import { statSync } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { userError } from "../shared/errors.ts";
import type { AppManifest, VolumeDeclaration } from "../manifest/app-manifest.ts";
import { isWithin, volumeDevice } from "../model/volume-rules.ts";
import { pithRoot } from "../shared/paths.ts";
import { ensureStaticCProgram } from "../shared/static-c-program.ts";
import type { CpioEntry } from "./cpio/newc-writer.ts";
import { readElfInfo } from "./elf/elf-file.ts";
import { resolveSharedLibraries } from "./elf/shared-libraries.ts";
import type { ImageFile } from "./image.ts";
import { bundleApp } from "./bundle-app.ts";
import { makeCodeCache } from "./code-cache.ts";
import { GUEST_APP_MODULE, GUEST_APP_SCRIPT, GUEST_CODE_CACHE, GUEST_NODE_MODULES, GUEST_START_SCRIPT, RUNTIME_NODE_MODULES } from "./guest-paths.ts";
import { NODE_START_FLAGS } from "./node-flags.ts";
import { nodeStartScript } from "./node-start-script.ts";
import { findPackageDir, planNodeModules, type ExternalPackage } from "./node-packages.ts";
import { GUEST_NODE_PATH, preparedNodeBinary } from "./node-runtime.ts";
import { RUNTIME_MOUNT, RUNTIME_MOUNTS_LINE, type DiskFile } from "./runtime-disk.ts";

export { GUEST_APP_MODULE } from "./guest-paths.ts";

export interface RootfsPlan {
  entries: CpioEntry[];
  files: ImageFile[];
  argv: string[];
  runtime: "node" | "native";
  /** Files for the read-only runtime disk (path in the disk -> file); empty: no disk. */
  disk: Record<string, DiskFile>;
}

/** Declared files and shipped packages are read-only: 0444, or 0555 when the host copy is executable. */
const readOnlyMode = (executable: boolean): number => (executable ? 0o555 : 0o444);

/**
 * Decides every file of an image's root filesystem, and nothing else goes in: Pith's init, the
 * app, its runtime, exactly the shared libraries their ELF headers name, and what the manifest
 * declares (`files:`, Node packages that cannot be bundled). No shell, no coreutils, no package
 * manager: there is nothing to run but the app.
 */
export async function planRootfs(manifest: AppManifest): Promise<RootfsPlan> {
  const plan: RootfsPlan = { entries: [], files: [], argv: [], runtime: manifest.source.kind === "entry" ? "node" : "native", disk: {} };
  const add = (entry: CpioEntry, role: ImageFile["role"], size = 0, from?: string): void => {
    plan.entries.push(entry);
    plan.files.push({ path: `/${entry.path}`, kind: entry.kind, size, role, ...(from === undefined ? {} : { from }) });
  };
  const addHostFile = async (guestPath: string, hostPath: string, role: ImageFile["role"], mode = 0o755): Promise<void> => {
    add({ path: guestPath.replace(/^\//, ""), kind: "file", mode, source: hostPath }, role, (await stat(hostPath)).size);
  };
  const addData = (guestPath: string, data: Uint8Array, role: ImageFile["role"], mode = 0o644): void => {
    add({ path: guestPath.replace(/^\//, ""), kind: "file", mode, data }, role, data.byteLength);
  };

  // Mount points init fills with the kernel's filesystems, and the one device node the kernel
  // needs before devtmpfs is mounted: the console that becomes init's stdin, stdout and stderr.
  for (const dir of ["dev", "proc", "tmp", "app", "pith"]) add({ path: dir, kind: "dir", mode: 0o755 }, "system");
  add({ path: "dev/console", kind: "chardev", mode: 0o600, major: 5, minor: 1 }, "system");
  await addHostFile("/init", await ensureStaticCProgram("pith-init", join(pithRoot(), "src/guest/init/init.c")), "init");

  if (manifest.source.kind === "entry") {
    // Node reads /sys for CPU and memory limits at start.
    add({ path: "sys", kind: "dir", mode: 0o755 }, "system");
    const node = await preparedNodeBinary();
    // The 86 MB runtime goes on the read-only disk, paged in on demand, not into RAM at boot.
    add({ path: RUNTIME_MOUNT.slice(1), kind: "dir", mode: 0o755 }, "system");
    plan.disk[basename(GUEST_NODE_PATH)] = { source: node.path, mode: 0o555 };
    plan.files.push({ path: GUEST_NODE_PATH, kind: "file", size: (await stat(node.path)).size, role: "runtime", on: "disk" });
    const runtimeLibraries = await addLibraries(node.hostPath, addHostFile);
    const bundle = await bundleApp(manifest.source.path, manifest.dir, manifest.node.external);
    await addNodeModules(plan, declaredExternals(manifest, bundle.externals), runtimeLibraries, add, addHostFile);
    if (bundle.format === "cjs") {
      addData(GUEST_APP_SCRIPT, bundle.code, "app");
      plan.argv = [GUEST_NODE_PATH, ...NODE_START_FLAGS, GUEST_APP_SCRIPT, ...manifest.args];
      // node.codeCache: a start script loads the app with it. Should V8 refuse the cache it made,
      // the image starts the app plainly.
      const cache = manifest.node.codeCache ? await makeCodeCache(node.path, bundle.code, NODE_START_FLAGS) : undefined;
      if (cache && "bytes" in cache) {
        addData(GUEST_CODE_CACHE, cache.bytes, "app");
        addData(GUEST_START_SCRIPT, Buffer.from(nodeStartScript()), "config");
        plan.argv = [GUEST_NODE_PATH, ...NODE_START_FLAGS, GUEST_START_SCRIPT, ...manifest.args];
      }
    } else {
      if (manifest.node.codeCache) {
        throw userError("CODE_CACHE_NEEDS_COMMONJS", `${join(manifest.dir, "pith.yaml")}: node.codeCache: this app bundles as an ES module (it awaits at top level, reads import.meta beyond .url, or imports a declared external package), and V8 caches the code of scripts only`,
          "remove node.codeCache, or what keeps the app an ES module");
      }
      addData(GUEST_APP_MODULE, bundle.code, "app");
      plan.argv = [GUEST_NODE_PATH, ...NODE_START_FLAGS, GUEST_APP_MODULE, ...manifest.args];
    }
  } else {
    const executable = `/app/${basename(manifest.source.path)}`;
    await addHostFile(executable, manifest.source.path, "app");
    await addLibraries(manifest.source.path, addHostFile);
    plan.argv = [executable, ...manifest.args];
  }

  // Declared files first: a volume mounted over one would hide it, and that is refused below.
  addDeclaredFiles(plan, manifest, add);
  const mounts = [...(Object.keys(plan.disk).length > 0 ? [RUNTIME_MOUNTS_LINE] : []), ...volumeMountLines(manifest.volumes, Object.keys(plan.disk).length > 0)];
  if (mounts.length > 0) addData("/pith/mounts", Buffer.from(mounts.map((l) => `${l}\n`).join("")), "config");
  for (const volume of manifest.volumes) {
    const hidden = plan.entries.find((e) => isWithin(`/${e.path}`, volume.mount));
    if (hidden) {
      throw userError("VOLUME_MOUNT_HIDES_APP", `${join(manifest.dir, "pith.yaml")}: volume "${volume.name}" mounted at ${volume.mount} would hide /${hidden.path}, part of the app's image`,
        'mount it at a path of its own, e.g. "/data"');
    }
    add({ path: volume.mount.slice(1), kind: "dir", mode: 0o755 }, "system");
  }

  const nulList = (items: string[]): Uint8Array => Buffer.from(items.map((s) => `${s}\0`).join(""));
  addData("/pith/argv", nulList(plan.argv), "config");
  const env = Object.keys(manifest.env)
    .sort()
    .map((k) => `${k}=${manifest.env[k]}`);
  addData("/pith/env", nulList(env), "config");
  addData("/pith/readiness", Buffer.from(readinessLine(manifest.readiness) + "\n"), "config");
  addParentDirectories(plan, add);
  return plan;
}

/** init's mount lines for the app's volumes: writable ext4, after the runtime disk if there is one. */
export function volumeMountLines(volumes: readonly VolumeDeclaration[], hasRuntimeDisk: boolean): string[] {
  return volumes.map((v, i) => `${volumeDevice(i, hasRuntimeDisk)} ${v.mount} ext4 rw`);
}

/**
 * `files:` from pith.yaml, at their destinations in the initramfs (there is a runtime disk only
 * for Node, and the kernel of a native app has no block device). The manifest reader refused
 * destinations over Pith's fixed paths; what else the image holds is known only now (the shared
 * libraries' paths, say), so a clash with it is refused here, naming the manifest's line.
 */
function addDeclaredFiles(plan: RootfsPlan, manifest: AppManifest, add: (entry: CpioEntry, role: ImageFile["role"], size?: number, from?: string) => void): void {
  const taken = new Map(plan.entries.map((e) => [`/${e.path}`, e.kind]));
  for (const file of manifest.files) {
    const clash = destinationClash(file.dest, taken);
    if (clash) {
      throw userError("FILES_DEST_TAKEN", `${join(manifest.dir, "pith.yaml")}:${file.line}: files: "${file.from}" cannot go to ${file.dest}: ${clash}`,
        "choose another dest for it");
    }
  }
  for (const file of manifest.files) {
    const entry: CpioEntry = { path: file.dest.slice(1), kind: "file", mode: readOnlyMode(file.executable), source: file.source, identity: file.identity };
    add(entry, "data", statSync(file.source).size, file.from);
  }
}

/** Why `dest` cannot be a file beside what the image already holds (`taken`: path -> kind). */
export function destinationClash(dest: string, taken: ReadonlyMap<string, CpioEntry["kind"]>): string | undefined {
  if (taken.has(dest)) return "the image already has it";
  const parts = dest.split("/");
  for (let i = 2; i < parts.length; i++) {
    const dir = parts.slice(0, i).join("/");
    const kind = taken.get(dir);
    if (kind !== undefined && kind !== "dir") return `${dir} is a ${kind} in the image`;
  }
  const inside = [...taken.keys()].find((p) => p.startsWith(`${dest}/`));
  return inside === undefined ? undefined : `it is a directory in the image (holding ${inside})`;
}

/** Packages named in node.external are shipped even when no static import names them. */
function declaredExternals(manifest: AppManifest, found: ExternalPackage[]): ExternalPackage[] {
  const all = new Map(found.map((p) => [p.name, p]));
  for (const name of manifest.node.external) {
    if (all.has(name)) continue;
    const dir = findPackageDir(name, manifest.dir);
    if (!dir) throw userError("NODE_PACKAGE_MISSING", `${name} (node.external in ${join(manifest.dir, "pith.yaml")}) is not installed`, `npm install ${name}`);
    all.set(name, { name, dir });
  }
  return [...all.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

/**
 * The external packages go on the runtime disk, not into the initramfs: they are paged in as the
 * app loads them instead of being copied into RAM at every boot (better-sqlite3 and its
 * dependencies are 3 MB), a snapshot holds only the pages read, and the disk is mounted read-only
 * so not even the app's own root can change them. /app/node_modules links there, so Node's lookup
 * from the app's bundle in /app finds them, and each package's own lookups run from its real path on the disk.
 * Each addon's shared libraries are found from its ELF headers, like the runtime's.
 */
async function addNodeModules(
  plan: RootfsPlan,
  externals: ExternalPackage[],
  runtimeLibraries: Set<string>,
  add: (entry: CpioEntry, role: ImageFile["role"]) => void,
  addHostFile: (guest: string, host: string, role: ImageFile["role"], mode?: number) => Promise<void>,
): Promise<void> {
  if (externals.length === 0) return;
  const files = planNodeModules(externals);
  for (const file of files) {
    plan.disk[`node_modules/${file.rel}`] = { source: file.source, mode: readOnlyMode(file.executable), identity: file.identity };
    plan.files.push({ path: `${RUNTIME_NODE_MODULES}/${file.rel}`, kind: "file", size: file.size, role: "module", on: "disk" });
  }
  add({ path: GUEST_NODE_MODULES.slice(1), kind: "symlink", mode: 0o777, target: RUNTIME_NODE_MODULES }, "system");
  // Addons are loaded into node's process: libraries it (or an earlier addon) loaded are reused.
  let loaded = runtimeLibraries;
  for (const addon of files.filter((f) => f.rel.endsWith(".node"))) loaded = await addLibraries(addon.source, addHostFile, loaded);
}


/** Every directory on the way to a file is listed too, so the record shows the whole tree. */
function addParentDirectories(plan: RootfsPlan, add: (entry: CpioEntry, role: ImageFile["role"]) => void): void {
  const present = new Set(plan.entries.map((e) => e.path));
  for (const entry of [...plan.entries]) {
    const parts = entry.path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (present.has(dir)) continue;
      present.add(dir);
      add({ path: dir, kind: "dir", mode: 0o755 }, "system");
    }
  }
}

/**
 * Adds the shared libraries an ELF file needs, beyond those its process has `loaded` already, and
 * returns the sonames it loads.
 */
async function addLibraries(
  elf: string,
  addHostFile: (guest: string, host: string, role: ImageFile["role"], mode?: number) => Promise<void>,
  loaded: Set<string> = new Set(),
): Promise<Set<string>> {
  if ((await readElfInfo(elf)).isStatic) return loaded;
  const libraries = await resolveSharedLibraries(elf, { loaded });
  for (const lib of libraries) await addHostFile(lib.installPath, lib.path, "library");
  return new Set([...loaded, ...libraries.map((lib) => lib.soname)]);
}

/** The readiness rule in the form init reads (see init.c). */
export function readinessLine(readiness: AppManifest["readiness"]): string {
  switch (readiness.kind) {
    case "call":
    case "none":
      return readiness.kind;
    case "tcp":
      return `tcp ${readiness.port}`;
    case "http":
      return `http ${readiness.port} ${readiness.path}`;
  }
}
