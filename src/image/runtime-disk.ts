import { createWriteStream } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, open, rm, stat, writeFile } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { execFile } from "../shared/exec.ts";
import { userError } from "../shared/errors.ts";
import { RUNTIME_MOUNT } from "./guest-paths.ts";

export { RUNTIME_MOUNT } from "./guest-paths.ts";
/** What init reads to mount the runtime disk. */
export const RUNTIME_MOUNTS_LINE = `vda ${RUNTIME_MOUNT} ext2`;

/** One file of the disk: where its bytes come from and its permission bits. */
export interface DiskFile {
  source: string;
  mode: number;
  /** The source as checked (a shipped package's file): copied only if the path still leads to it. */
  identity?: { dev: number; ino: number };
}

/** Fixed identity and time, so the same files always give the same disk bytes. */
const FIXED_UUID = "00000000-0000-4000-8000-000000000000";
const REPRODUCIBLE_ENV = { ...process.env, E2FSPROGS_FAKE_TIME: "1" };
const BLOCK = 4096;
const DIR_MODE = 0o555;

/**
 * Writes a read-only ext2 disk holding `files` (path in the disk, e.g. "node" or
 * "node_modules/x/index.js" -> file). ext2 because the guest only reads it (no journal needed) and
 * e2fsprogs builds it without root or loop devices. mke2fs adds entries in name order; it copies
 * times and owners from the host, so debugfs then sets every time to 0 and every owner to root.
 */
export async function writeRuntimeDisk(files: Record<string, DiskFile>, outPath: string): Promise<{ bytes: number }> {
  const names = Object.keys(files).sort();
  for (const name of names) checkDiskPath(name);
  const dirs = directoriesOf(names);
  const staging = await mkdtemp(join(tmpdir(), "pith-disk-"));
  try {
    const root = join(staging, "root");
    await mkdir(root);
    for (const dir of dirs) await mkdir(join(root, dir), { recursive: true });
    let blocks = dirs.length + 1;
    for (const name of names) {
      const { source, mode, identity } = files[name]!;
      const size = await copyChecked(source, join(root, name), identity);
      await chmod(join(root, name), mode);
      blocks += Math.ceil(size / BLOCK) + 1;
    }
    for (const dir of dirs) await chmod(join(root, dir), DIR_MODE);
    const sizeMiB = Math.ceil((blocks * BLOCK * 1.05) / 1024 / 1024) + 4;
    await execFile(
      "mke2fs",
      ["-q", "-F", "-t", "ext2", "-b", String(BLOCK), "-m", "0", "-I", "128", "-N", String(16 + names.length + dirs.length),
        "-U", FIXED_UUID, "-E", `hash_seed=${FIXED_UUID},root_owner=0:0`, "-L", "pith-runtime", "-d", root, outPath, `${sizeMiB}M`],
      { env: REPRODUCIBLE_ENV, code: "DISK_BUILD_FAILED" },
    );
    const commands = [...dirs, ...names].flatMap((name) =>
      ["ctime 0", "atime 0", "mtime 0", "uid 0", "gid 0"].map((field) => `sif "/${name}" ${field}`));
    await writeFile(join(staging, "debugfs.cmds"), commands.join("\n") + "\n");
    await execFile("debugfs", ["-w", "-f", join(staging, "debugfs.cmds"), outPath], { env: REPRODUCIBLE_ENV, code: "DISK_BUILD_FAILED" });
    return { bytes: (await stat(outPath)).size };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Copies through the opened file, after checking it is still the one checked earlier: a path
 * swapped for a symlink to a host file in between is refused, not followed. Returns its size.
 */
async function copyChecked(source: string, to: string, identity: DiskFile["identity"]): Promise<number> {
  if (!identity) {
    await copyFile(source, to);
    return (await stat(source)).size;
  }
  const input = await open(source, "r");
  try {
    const stats = await input.stat();
    if (!stats.isFile() || stats.dev !== identity.dev || stats.ino !== identity.ino) {
      throw userError("DISK_SOURCE_CHANGED", `${source} is no longer the file that was checked`, "build again once nothing changes the app's files");
    }
    await pipeline(input.createReadStream({ autoClose: false }), createWriteStream(to));
    return stats.size;
  } finally {
    await input.close();
  }
}

/** Every directory on the way to a file, parents first. */
function directoriesOf(names: string[]): string[] {
  const dirs = new Set<string>();
  for (const name of names) for (let d = dirname(name); d !== "."; d = dirname(d)) dirs.add(d);
  return [...dirs].sort();
}

/**
 * Paths go into debugfs's command file, one command per line, in double quotes. A name with a
 * line break or a quote (a hostile package can ship one) could add its own commands, such as
 * `write`, which copies any host file into the disk: such names are refused.
 */
function checkDiskPath(name: string): void {
  if (/["\\\x00-\x1f\x7f]/.test(name) || posix.isAbsolute(name) || name.split("/").some((p) => p === "" || p === "." || p === "..")) {
    throw userError("DISK_BAD_PATH", `cannot put ${JSON.stringify(name)} on the runtime disk: a quote, backslash, control character or bad component in its name`,
      "rename the file (in the package or app that ships it)");
  }
}
