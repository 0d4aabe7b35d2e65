import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { userError } from "../shared/errors.ts";
import { execFile } from "../shared/exec.ts";
import { withFileLock } from "../shared/file-lock.ts";
import { sha256 } from "../shared/hash.ts";
import { kernelCacheDir, pithRoot } from "../shared/paths.ts";
import type { Progress } from "../shared/progress.ts";
import { ensurePrivateDir } from "../shared/private-files.ts";

/** Debian's kernel source package: the only place Pith's kernels come from. */
export const LINUX_SOURCE_PACKAGE = "linux-source-6.1";
const TARBALL = `/usr/src/${LINUX_SOURCE_PACKAGE}.tar.xz`;

export interface LinuxSource {
  /** Debian's package version and Pith's patches (`<version>+pith.<patches>`), part of every kernel's cache key. */
  version: string;
  dir: string;
}

/** Pith's changes to Debian's source, applied in name order when it is extracted (each says why in its header). */
export const kernelPatchesDir = (): string => join(pithRoot(), "src", "kernel", "patches");

export interface KernelPatch {
  name: string;
  path: string;
  text: string;
}

export async function kernelPatches(): Promise<KernelPatch[]> {
  const dir = kernelPatchesDir();
  const names = (await readdir(dir)).filter((n) => n.endsWith(".patch")).sort();
  return Promise.all(names.map(async (name) => ({ name, path: join(dir, name), text: await readFile(join(dir, name), "utf8") })));
}

/** Names the patch set: a changed, added or removed patch is another source, so every kernel is built again. */
export function patchesId(patches: readonly KernelPatch[]): string {
  return sha256(JSON.stringify(patches.map((p) => [p.name, p.text]))).slice(0, 12);
}

/** What a kernel built from this source says after its version (`uname -r`): which patches it has. */
export const localVersion = (source: Pick<LinuxSource, "version">): string => `-pith.${source.version.split("+pith.")[1] ?? "none"}`;

export async function linuxSourceVersion(): Promise<string> {
  const { stdout } = await execFile("dpkg-query", ["-W", "-f=${Version}", LINUX_SOURCE_PACKAGE]).catch(() => {
    throw userError(
      "KERNEL_SOURCE_MISSING",
      `Debian's ${LINUX_SOURCE_PACKAGE} package is not installed`,
      `run: apt-get install ${LINUX_SOURCE_PACKAGE} flex bison bc libelf-dev (or bash scripts/setup.sh)`,
    );
  });
  return `${stdout.trim()}+pith.${patchesId(await kernelPatches())}`;
}

/** Extracts the source tarball and applies Pith's patches, once per version (about 30 s); later calls are free. */
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
    const tree = join(staging, LINUX_SOURCE_PACKAGE);
    for (const patch of await kernelPatches()) {
      progress?.update(0, `applying ${patch.name}`);
      await applyPatch(tree, patch);
    }
    await rename(tree, dir);
    await rm(staging, { recursive: true, force: true });
  });
  return { version, dir };
}

/**
 * `git apply`, the patch tool every machine here has. The ceiling keeps git from taking a
 * repository above the tree (a PITH_HOME inside a checkout) for the one to patch.
 */
export async function applyPatch(tree: string, patch: KernelPatch, options: { check?: boolean } = {}): Promise<void> {
  await execFile("git", ["apply", ...(options.check ? ["--check"] : []), "-p1", patch.path], {
    cwd: tree,
    env: { ...process.env, GIT_CEILING_DIRECTORIES: join(tree, "..") },
    code: "KERNEL_PATCH_FAILED",
  });
}
