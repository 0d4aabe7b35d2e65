import { copyFile, mkdir, mkdtemp, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "../shared/exec.ts";

/** Where the runtime disk is mounted in the guest, and what init reads to mount it. */
export const RUNTIME_MOUNT = "/runtime";
export const RUNTIME_MOUNTS_LINE = `vda ${RUNTIME_MOUNT} ext2`;

/** Fixed identity and time, so the same files always give the same disk bytes. */
const FIXED_UUID = "00000000-0000-4000-8000-000000000000";
const REPRODUCIBLE_ENV = { ...process.env, E2FSPROGS_FAKE_TIME: "1" };

/**
 * Writes a read-only ext2 disk holding `files` (name in the disk -> host path). ext2 because the
 * guest only reads it (no journal needed) and e2fsprogs builds it without root or loop devices.
 * mke2fs copies each file's ctime from the host, so debugfs sets every time to 0 afterwards.
 */
export async function writeRuntimeDisk(files: Record<string, string>, outPath: string): Promise<{ bytes: number }> {
  const staging = await mkdtemp(join(tmpdir(), "pith-disk-"));
  try {
    const root = join(staging, "root");
    await mkdir(root);
    let total = 0;
    for (const [name, source] of Object.entries(files)) {
      await copyFile(source, join(root, name));
      await utimes(join(root, name), 0, 0);
      total += (await stat(source)).size;
    }
    await utimes(root, 0, 0);
    const sizeMiB = Math.ceil((total * 1.05) / 1024 / 1024) + 4;
    await execFile(
      "mke2fs",
      ["-q", "-F", "-t", "ext2", "-b", "4096", "-m", "0", "-I", "128", "-N", String(16 + Object.keys(files).length),
        "-U", FIXED_UUID, "-E", `hash_seed=${FIXED_UUID},root_owner=0:0`, "-L", "pith-runtime", "-d", root, outPath, `${sizeMiB}M`],
      { env: REPRODUCIBLE_ENV, code: "DISK_BUILD_FAILED" },
    );
    const commands = Object.keys(files).flatMap((name) => ["ctime", "atime", "mtime"].map((field) => `sif /${name} ${field} 0`));
    await writeFile(join(staging, "debugfs.cmds"), commands.join("\n") + "\n");
    await execFile("debugfs", ["-w", "-f", join(staging, "debugfs.cmds"), outPath], { env: REPRODUCIBLE_ENV, code: "DISK_BUILD_FAILED" });
    return { bytes: (await stat(outPath)).size };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
