import { randomBytes } from "node:crypto";
import { readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { diskBytes } from "../shared/disk-usage.ts";
import { execFile } from "../shared/exec.ts";
import { withFileLock } from "../shared/file-lock.ts";
import { sha256 } from "../shared/hash.ts";
import { ensurePrivateDir } from "../shared/private-files.ts";
import { nearestTree, treesToEvict, type KeepLimits, type KeptTree } from "./build-tree-reuse.ts";

/**
 * Finished kernel build trees (`O=` dirs), kept so that a new configuration starts from the
 * nearest one and Kbuild recompiles only the objects whose CONFIG_ symbols changed.
 *
 * Layout: `<dir>/<id>/tree/` is the build tree, `<dir>/<id>/kept.json` its record. A tree enters
 * by one rename of a directory that already holds both, so a tree without its record, or one a
 * crashed build left half-moved (`.incoming-*`), never exists under an id. Builds never run in a
 * kept tree: they copy it to their own work dir under the lock, so two builds never share one and
 * eviction never removes a tree while it is being copied.
 */
export class KeptBuildTrees {
  constructor(
    readonly dir: string,
    readonly limits: KeepLimits,
  ) {}

  /**
   * Copies the kept tree nearest to `config` (under the same reuse key) to `dest`, which must not
   * exist. Undefined when there is none, or the copy failed (then `dest` is removed again).
   */
  async checkoutNearest(reuseKey: string, config: string, dest: string): Promise<CheckedOutTree | undefined> {
    if (this.limits.maxTrees <= 0) return undefined;
    await ensurePrivateDir(this.dir);
    return this.locked(async () => {
      const nearest = nearestTree(await this.list(), reuseKey, config);
      if (!nearest) return undefined;
      const started = Date.now();
      try {
        // A real copy, not hard links: the compiler rewrites objects in place.
        await execFile("cp", ["-a", join(this.dir, nearest.tree.id, "tree"), dest], { code: "KERNEL_TREE_COPY_FAILED" });
      } catch {
        await rm(dest, { recursive: true, force: true });
        return undefined;
      }
      const copySeconds = (Date.now() - started) / 1000;
      await this.writeRecord(nearest.tree.id, { ...nearest.tree, lastUsedAt: Date.now() });
      return { id: nearest.tree.id, configHash: sha256(nearest.tree.config), distance: nearest.distance, copySeconds, bytes: nearest.tree.bytes };
    });
  }

  /**
   * Moves a build tree that finished successfully into the kept trees (the caller must not use
   * `workDir` afterwards), trimmed of the link outputs an incremental build remakes anyway, then
   * evicts beyond the limits. `workDir` must be on the same filesystem as the kept trees.
   */
  async keep(workDir: string, reuseKey: string, config: string): Promise<void> {
    if (this.limits.maxTrees <= 0) return;
    await ensurePrivateDir(this.dir);
    await trimForReuse(workDir);
    const bytes = await diskBytes(workDir);
    const id = sha256(JSON.stringify([reuseKey, config])).slice(0, 32);
    const record: KeptTree = { id, reuseKey, config, bytes, lastUsedAt: Date.now() };
    await this.locked(async () => {
      const incoming = join(this.dir, `.incoming-${process.pid}-${randomBytes(4).toString("hex")}`);
      await ensurePrivateDir(incoming);
      await rename(workDir, join(incoming, "tree"));
      await writeFile(join(incoming, RECORD), JSON.stringify(record));
      await this.remove(id);
      await rename(incoming, join(this.dir, id));
      for (const tree of treesToEvict(await this.list(), this.limits)) await this.remove(tree.id);
    });
  }

  /** Drops a kept tree (one a build failed from): no later build starts from it. */
  async discard(id: string): Promise<void> {
    await this.locked(() => this.remove(id));
  }

  /** The kept trees with a readable record; half-made entries are removed (the lock is held, so nobody is making them). */
  async list(): Promise<KeptTree[]> {
    const entries = await readdir(this.dir).catch(() => [] as string[]);
    const trees: KeptTree[] = [];
    for (const entry of entries) {
      if (entry.endsWith(".lock") || entry.includes(".lock.")) continue;
      const record = entry.startsWith(".") ? undefined : await this.readRecord(entry);
      if (record) trees.push(record);
      else await rm(join(this.dir, entry), { recursive: true, force: true });
    }
    return trees;
  }

  private async readRecord(id: string): Promise<KeptTree | undefined> {
    try {
      const record = JSON.parse(await readFile(join(this.dir, id, RECORD), "utf8")) as KeptTree;
      const valid =
        record.id === id &&
        typeof record.reuseKey === "string" &&
        typeof record.config === "string" &&
        typeof record.bytes === "number" &&
        typeof record.lastUsedAt === "number" &&
        (await stat(join(this.dir, id, "tree"))).isDirectory();
      return valid ? record : undefined;
    } catch {
      return undefined;
    }
  }

  private async writeRecord(id: string, record: KeptTree): Promise<void> {
    const pending = join(this.dir, id, `${RECORD}.${process.pid}.new`);
    await writeFile(pending, JSON.stringify(record));
    await rename(pending, join(this.dir, id, RECORD));
  }

  /** Renamed aside first, so a crash mid-delete leaves a dot entry that the next listing sweeps, never a partial tree under an id. */
  private async remove(id: string): Promise<void> {
    const aside = join(this.dir, `.evicting-${process.pid}-${randomBytes(4).toString("hex")}`);
    try {
      await rename(join(this.dir, id), aside);
    } catch {
      return;
    }
    await rm(aside, { recursive: true, force: true });
  }

  private locked<T>(work: () => Promise<T>): Promise<T> {
    return withFileLock(join(this.dir, "trees.lock"), work);
  }
}

export interface CheckedOutTree {
  id: string;
  /** Of the configuration the tree was built with: the hash its kernel is cached under. */
  configHash: string;
  /** CONFIG_ symbols that differ from the wanted configuration. */
  distance: number;
  copySeconds: number;
  bytes: number;
}

const RECORD = "kept.json";

/**
 * Link outputs and the builder's own files: every incremental build relinks, so keeping them
 * only costs space. Objects, .cmd files, include/config and include/generated stay: they are what
 * lets Kbuild decide what to rebuild.
 */
const LINK_OUTPUTS = ["vmlinux", "vmlinux.o", "vmlinux.stripped", "vmlinux.a", "System.map", ".tmp_vmlinux.kallsyms1", ".tmp_vmlinux.kallsyms2", ".tmp_vmlinux.btf", "ccache-stats.log"];

async function trimForReuse(workDir: string): Promise<void> {
  const entries = await readdir(workDir);
  const doomed = entries.filter((e) => LINK_OUTPUTS.includes(e) || /^\.tmp_vmlinux\.kallsyms\d+\.[Sso]$/.test(e));
  await Promise.all(doomed.map((e) => rm(join(workDir, e), { force: true })));
}
