/**
 * Which CONFIG_ options that differ between capability sets sit in headers most objects read.
 * Each set's final .config is made (tinyconfig + fragments + olddefconfig, seconds each); every
 * option whose value differs between two sets is counted against a build tree's objects whose
 * Kbuild dependency record (fixdep's `.<object>.o.cmd`) names it. Changing an option read by
 * more than the threshold recompiles that share of the kernel, so such options belong in `base`
 * (src/kernel/fragments/base.config) for a kept build tree to be worth reusing.
 *
 *   npx tsx bench/kernel/header-options.ts [--tree DIR] [--threshold 0.05] [--sets base+volume,...]
 *
 * The sets are those `pith kernel prebuild` builds, plus --sets, compared within their vCPU side
 * (with or without the `smp` fragment). DIR defaults to the most
 * recently used kept tree (~/.pith/kernel/trees): any tree will do, the options a header reads
 * do not depend on which set built it (the objects present do, slightly).
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { configSymbols } from "../../src/kernel/config-distance.ts";
import { makeConfig } from "../../src/kernel/kernel-builder.ts";
import { COMMON_KERNEL_NEEDS, fragmentsFor, parseFragmentNames, type FragmentName } from "../../src/kernel/kernel-fragments.ts";
import { keptBuildTrees } from "../../src/kernel/kept-trees-config.ts";
import { ensureLinuxSource } from "../../src/kernel/linux-source.ts";
import { kernelCacheDir } from "../../src/shared/paths.ts";
import { ensurePrivateDir } from "../../src/shared/private-files.ts";

const { values: flags } = parseArgs({
  options: {
    tree: { type: "string" },
    threshold: { type: "string", default: "0.05" },
    sets: { type: "string", default: "" },
  },
});
const threshold = Number(flags.threshold);
if (!(threshold > 0 && threshold < 1)) throw new Error(`--threshold ${flags.threshold}: give a share between 0 and 1, e.g. 0.05`);

async function newestKeptTree(): Promise<string> {
  const trees = keptBuildTrees();
  const newest = (await trees.list()).sort((a, b) => b.lastUsedAt - a.lastUsedAt)[0];
  if (!newest) throw new Error(`no kept build tree in ${trees.dir}: build a kernel first, or pass --tree DIR`);
  return join(trees.dir, newest.id, "tree");
}

/** For each CONFIG_ option, how many objects' dependency records name it; and how many objects there are. */
async function optionReaders(tree: string): Promise<{ objects: number; readers: Map<string, number> }> {
  const entries = await readdir(tree, { recursive: true, withFileTypes: true });
  const records = entries.filter((e) => e.isFile() && /^\..+\.o\.cmd$/.test(e.name)).map((e) => join(e.parentPath ?? e.path, e.name));
  if (records.length === 0) throw new Error(`${tree} holds no .o.cmd files: not a kernel build tree`);
  const readers = new Map<string, number>();
  for (const record of records) {
    const named = new Set([...(await readFile(record, "utf8")).matchAll(/\$\(wildcard include\/config\/([A-Za-z0-9_]+)\)/g)].map((m) => m[1]!));
    for (const option of named) readers.set(option, (readers.get(option) ?? 0) + 1);
  }
  return { objects: records.length, readers };
}

const sets: FragmentName[][] = [...COMMON_KERNEL_NEEDS.map(fragmentsFor), ...flags.sets.split(",").filter(Boolean).map((s) => parseFragmentNames(s.replaceAll("+", ",")))];
const source = await ensureLinuxSource();
await ensurePrivateDir(join(kernelCacheDir(), "build"));
const scratch = await mkdtemp(join(kernelCacheDir(), "build", "header-options-"));
const configs: Map<string, string>[] = [];
try {
  for (const set of sets) configs.push(configSymbols(await makeConfig(source, await mkdtemp(join(scratch, "config-")), set)));
} finally {
  await rm(scratch, { recursive: true, force: true });
}

// Sets are compared within their vCPU side only: SMP stays in the `smp` fragment (a 1-vCPU kernel
// boots faster without it), so a tree is reused only by sets of its own side.
const side = (set: FragmentName[]): boolean => set.includes("smp");
const differing = new Set<string>();
configs.forEach((config, i) => {
  configs.forEach((other, j) => {
    if (side(sets[i]!) !== side(sets[j]!)) return;
    for (const option of new Set([...config.keys(), ...other.keys()])) if ((config.get(option) ?? "n") !== (other.get(option) ?? "n")) differing.add(option);
  });
});
const tree = flags.tree ?? (await newestKeptTree());
const { objects, readers } = await optionReaders(tree);
const ranked = [...differing].map((option) => ({ option, readers: readers.get(option) ?? 0 })).sort((a, b) => b.readers - a.readers);
const headerLevel = ranked.filter((r) => r.readers / objects > threshold);

process.stdout.write(`${objects} objects in ${tree}\n${sets.length} sets: ${sets.map((s) => s.join("+")).join(", ")}\n`);
process.stdout.write(`${differing.size} options differ between them; ${headerLevel.length} are read by more than ${(threshold * 100).toFixed(1)}% of the objects\n\n`);
process.stdout.write(`${"option".padEnd(32)} ${"objects".padStart(7)} ${"share".padStart(6)}  value in each set\n`);
for (const { option, readers: n } of ranked.filter((r) => r.readers > 0)) {
  process.stdout.write(`${option.padEnd(32)} ${String(n).padStart(7)} ${((100 * n) / objects).toFixed(1).padStart(5)}%  ${configs.map((c) => c.get(option) ?? "n").join(" ")}\n`);
}
process.stdout.write(`(${ranked.filter((r) => r.readers === 0).length} more differ but no object in this tree reads them)\n`);
if (headerLevel.length > 0) process.exitCode = 1;
