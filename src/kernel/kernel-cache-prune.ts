import { existsSync } from "node:fs";
import { readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { diskBytes } from "../shared/disk-usage.ts";
import { isAlive, withFileLock } from "../shared/file-lock.ts";
import { kernelCacheDir } from "../shared/paths.ts";
import { withStableBuildDir } from "./kernel-builder.ts";
import { kernelDir, listKernels } from "./kernel-cache.ts";

/**
 * What `pith kernel prune` removes: whatever no build can use again. Every cache key holds the
 * source version (Debian's package and Pith's patches), so once either changes, the extracted
 * source of the old version (1.3 GB) and the kernels built from it are never found again. Nothing
 * is lost: an image carries its own copy of its kernel, so removing a cached one only means a
 * later build of that version compiles it again. Kept build trees are not here: their own limits
 * evict them (kept-build-trees.ts).
 */
export interface PrunedItem {
  kind: "source" | "kernel" | "leftover";
  /** What it was: a source version, a kernel's config hash and fragments, or a dead process's scratch dir. */
  name: string;
  path: string;
  bytes: number;
}

export interface PruneOptions {
  /** The version builds use now (linuxSourceVersion()): everything built from another goes. */
  currentSourceVersion: string;
  /** List what would go, remove nothing. */
  dryRun?: boolean;
  /** Told before the prune waits for a running build to finish. */
  onWait?: (pid: number) => void;
}

export async function pruneKernelCache(options: PruneOptions): Promise<PrunedItem[]> {
  const root = kernelCacheDir();
  if (!existsSync(root)) return [];
  // Every compile runs under the stable build dir's lock and reads its source dir: holding that
  // lock, no build is reading a source dir this removes.
  return withStableBuildDir(async () => {
    const doomed = [...(await staleSources(root, options.currentSourceVersion)), ...(await staleKernels(options.currentSourceVersion)), ...(await leftovers(root))];
    for (const item of doomed) item.bytes = await diskBytes(item.path).catch(() => 0);
    if (!options.dryRun) {
      for (const item of doomed) await removeItem(root, item);
      await dropDanglingIndex(root);
    }
    return doomed;
  }, options.onWait);
}

async function staleSources(root: string, current: string): Promise<PrunedItem[]> {
  const dir = join(root, "src");
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith(".") && e.name !== current)
    .map((e) => ({ kind: "source" as const, name: e.name, path: join(dir, e.name), bytes: 0 }));
}

async function staleKernels(current: string): Promise<PrunedItem[]> {
  return (await listKernels())
    .filter((k) => k.sourceVersion !== current)
    .map((k) => ({ kind: "kernel" as const, name: `${k.configHash.slice(0, 12)} ${k.fragments.join("+")} (${k.sourceVersion})`, path: kernelDir(k.configHash), bytes: 0 }));
}

/** Scratch dirs named after a process that has ended: a source extraction or a configuration that was killed. */
async function leftovers(root: string): Promise<PrunedItem[]> {
  const found: PrunedItem[] = [];
  const scan = async (dir: string, pattern: RegExp): Promise<void> => {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const pid = pattern.exec(name)?.[1];
      if (pid !== undefined && !isAlive(Number(pid))) found.push({ kind: "leftover", name, path: join(dir, name), bytes: 0 });
    }
  };
  await scan(join(root, "src"), /^\.extract-(\d+)$/);
  await scan(join(root, "build"), /^[0-9a-f]{16}-(\d+)$/);
  return found;
}

/**
 * Moved aside first, under the lock its makers take, so that nobody finds half of one: a source
 * whose Makefile is there is taken as whole, and a kernel whose vmlinux is there as built.
 */
async function removeItem(root: string, item: PrunedItem): Promise<void> {
  const remove = async (): Promise<void> => {
    const aside = `${item.path}.pruning-${process.pid}`;
    await rename(item.path, aside).catch(() => undefined);
    await rm(aside, { recursive: true, force: true });
  };
  if (item.kind === "source") await withFileLock(join(root, "src", `${item.name}.lock`), remove);
  else if (item.kind === "kernel") await withFileLock(`${item.path}.lock`, remove);
  else await rm(item.path, { recursive: true, force: true });
}

/** Index entries (fragments -> config hash) whose kernel is gone: they would only send a lookup to a rebuild. */
async function dropDanglingIndex(root: string): Promise<void> {
  const dir = join(root, "by-fragments");
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const target = (await readFile(join(dir, name), "utf8").catch(() => "")).trim();
    if (!existsSync(join(kernelDir(target), "vmlinux"))) await rm(join(dir, name), { force: true });
  }
}
