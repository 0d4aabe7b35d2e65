import { stat } from "node:fs/promises";
import { basename, join } from "node:path";
import type { AppManifest, VolumeDeclaration } from "../manifest/app-manifest.ts";
import { isWithin, volumeDevice } from "../model/volume-rules.ts";
import { userError } from "../shared/errors.ts";
import { pithRoot } from "../shared/paths.ts";
import { ensureStaticCProgram } from "../shared/static-c-program.ts";
import type { CpioEntry } from "./cpio/newc-writer.ts";
import { readElfInfo } from "./elf/elf-file.ts";
import { resolveSharedLibraries } from "./elf/shared-libraries.ts";
import type { ImageFile } from "./image.ts";
import { bundleApp } from "./bundle-app.ts";
import { GUEST_NODE_PATH, preparedNodeBinary } from "./node-runtime.ts";
import { RUNTIME_MOUNT, RUNTIME_MOUNTS_LINE } from "./runtime-disk.ts";

export interface RootfsPlan {
  entries: CpioEntry[];
  files: ImageFile[];
  argv: string[];
  runtime: "node" | "native";
  /** Files for the read-only runtime disk (name in the disk -> host path); empty: no disk. */
  disk: Record<string, string>;
}

/** Where the bundled app goes in a Node image. */
export const GUEST_APP_MODULE = "/app/main.mjs";

/**
 * Decides every file of an image's root filesystem, and nothing else goes in: Pith's init, the
 * app, its runtime and exactly the shared libraries their ELF headers name. No shell, no
 * coreutils, no package manager: there is nothing to run but the app.
 */
export async function planRootfs(manifest: AppManifest): Promise<RootfsPlan> {
  const plan: RootfsPlan = { entries: [], files: [], argv: [], runtime: manifest.source.kind === "entry" ? "node" : "native", disk: {} };
  const add = (entry: CpioEntry, role: ImageFile["role"], size = 0): void => {
    plan.entries.push(entry);
    plan.files.push({ path: `/${entry.path}`, kind: entry.kind, size, role });
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
    plan.disk[basename(GUEST_NODE_PATH)] = node.path;
    plan.files.push({ path: GUEST_NODE_PATH, kind: "file", size: (await stat(node.path)).size, role: "runtime", on: "disk" });
    await addLibraries(node.hostPath, addHostFile);
    addData(GUEST_APP_MODULE, await bundleApp(manifest.source.path, manifest.dir), "app");
    plan.argv = [GUEST_NODE_PATH, GUEST_APP_MODULE, ...manifest.args];
  } else {
    const executable = `/app/${basename(manifest.source.path)}`;
    await addHostFile(executable, manifest.source.path, "app");
    await addLibraries(manifest.source.path, addHostFile);
    plan.argv = [executable, ...manifest.args];
  }

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

async function addLibraries(executable: string, addHostFile: (guest: string, host: string, role: ImageFile["role"], mode?: number) => Promise<void>): Promise<void> {
  if ((await readElfInfo(executable)).isStatic) return;
  for (const lib of await resolveSharedLibraries(executable)) await addHostFile(lib.installPath, lib.path, "library");
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
