import { existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { userError } from "../shared/errors.ts";
import { execFile } from "../shared/exec.ts";
import { withFileLock } from "../shared/file-lock.ts";
import { kernelCacheDir } from "../shared/paths.ts";
import type { Progress } from "../shared/progress.ts";
import { ensurePrivateDir } from "../shared/private-files.ts";

/** Debian's kernel source package: the only place Pith's kernels come from. */
export const LINUX_SOURCE_PACKAGE = "linux-source-6.1";
const TARBALL = `/usr/src/${LINUX_SOURCE_PACKAGE}.tar.xz`;

export interface LinuxSource {
  /** The Debian package version, part of every kernel's cache key. */
  version: string;
  dir: string;
}

export async function linuxSourceVersion(): Promise<string> {
  const { stdout } = await execFile("dpkg-query", ["-W", "-f=${Version}", LINUX_SOURCE_PACKAGE]).catch(() => {
    throw userError(
      "KERNEL_SOURCE_MISSING",
      `Debian's ${LINUX_SOURCE_PACKAGE} package is not installed`,
      `run: apt-get install ${LINUX_SOURCE_PACKAGE} flex bison bc libelf-dev (or bash scripts/setup.sh)`,
    );
  });
  return stdout.trim();
}

/** Extracts the source tarball once per package version (about 30 s); later calls are free. */
export async function ensureLinuxSource(progress?: Progress): Promise<LinuxSource> {
  const version = await linuxSourceVersion();
  const root = join(kernelCacheDir(), "src");
  const dir = join(root, version);
  if (existsSync(join(dir, "Makefile"))) return { version, dir };
  await ensurePrivateDir(root);
  await withFileLock(join(root, `${version}.lock`), async () => {
    if (existsSync(join(dir, "Makefile"))) return;
    const staging = join(root, `.extract-${process.pid}`);
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging);
    progress?.update(0, `extracting ${TARBALL}`);
    await execFile("tar", ["-xf", TARBALL, "-C", staging], { code: "KERNEL_SOURCE_EXTRACT" });
    await rename(join(staging, LINUX_SOURCE_PACKAGE), dir);
    await rm(staging, { recursive: true, force: true });
  });
  return { version, dir };
}
