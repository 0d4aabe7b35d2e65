import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { KeptBuildTrees } from "./kept-build-trees.ts";
import { compileKernel } from "./kernel-builder.ts";
import type { LinuxSource } from "./linux-source.ts";

/**
 * compileKernel against a stand-in kernel source: a Makefile that settles any .config as is and
 * "compiles" vmlinux (a copy of /bin/true, so strip has an ELF to strip), failing when the build
 * dir holds a file named `poisoned`, as a build from a damaged kept tree would. Each attempt is
 * counted in `attempts` beside the build dir. Real make, strip and kept trees; no kernel.
 */
const root = await mkdtemp(join(tmpdir(), "pith-compile-kernel-"));
after(() => rm(root, { recursive: true, force: true }));

async function fakeSource(name: string, vmlinuxRecipe: string): Promise<LinuxSource> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, "Makefile"),
    [".PHONY: olddefconfig vmlinux", "olddefconfig:", "\t@true", "vmlinux:", "\t@echo attempt >> $(O)/../attempts", ...vmlinuxRecipe.split("\n").map((l) => `\t${l}`), ""].join("\n"),
  );
  return { version: `fake-${name}`, dir };
}

const source = await fakeSource(
  "source",
  ['@if [ -e $(O)/poisoned ]; then echo "broken.o: file format not recognized" >&2; exit 2; fi', '@echo "  CC      kernel/fork.o"', "@cp /bin/true $(O)/vmlinux"].join("\n"),
);

const attempts = async (buildDir: string) => (await readFile(join(buildDir, "..", "attempts"), "utf8").catch(() => "")).split("\n").filter(Boolean).length;

test("a build from a kept tree that fails is built once more from an empty directory, and the tree is dropped", async () => {
  const work = await mkdtemp(join(root, "work-"));
  const buildDir = join(work, "tree");
  const trees = new KeptBuildTrees(join(work, "trees"), { maxTrees: 4, maxBytes: 2 ** 30 });

  const first = await compileKernel(source, buildDir, "CONFIG_A=y\n", { compilerCache: false, trees });
  assert.equal(first.reusedTree, undefined, "nothing is kept yet: the first build is clean");
  await trees.keep(buildDir, first.reuseKey, "CONFIG_A=y\n");
  const [kept] = await trees.list();
  assert.ok(kept);
  // Damage the kept tree the way a killed build or a full disk would, invisibly to Kbuild.
  await writeFile(join(trees.dir, kept.id, "tree", "poisoned"), "");

  const second = await compileKernel(source, buildDir, "CONFIG_A=y\nCONFIG_B=y\n", { compilerCache: false, trees });
  assert.equal(await attempts(buildDir), 3, "clean, then from the damaged tree, then clean again");
  assert.match(second.failedReuse ?? "", /make .* failed/);
  assert.equal(second.reusedTree, undefined, "the kernel came from the clean retry");
  assert.equal(second.steps, 1);
  assert.ok(existsSync(second.vmlinux));
  assert.ok(!existsSync(join(buildDir, "poisoned")), "the retry does not inherit the damaged tree's files");
  assert.equal(await readFile(join(buildDir, ".config"), "utf8"), "CONFIG_A=y\nCONFIG_B=y\n");
  assert.deepEqual(await trees.list(), [], "the damaged tree is no longer offered to later builds");
});

test("a clean build that fails is not retried: the error is the build's own", async () => {
  const work = await mkdtemp(join(root, "work-"));
  const buildDir = join(work, "tree");
  const broken = await fakeSource("broken", 'echo "kernel/fork.c:1: error: expected declaration" >&2; exit 2');
  const trees = new KeptBuildTrees(join(work, "trees"), { maxTrees: 4, maxBytes: 2 ** 30 });
  await assert.rejects(compileKernel(broken, buildDir, "CONFIG_A=y\n", { compilerCache: false, trees }), /expected declaration/);
  assert.equal(await attempts(buildDir), 1);
});

test("a build from a kept tree that succeeds reports the tree and keeps it on offer", async () => {
  const work = await mkdtemp(join(root, "work-"));
  const buildDir = join(work, "tree");
  const trees = new KeptBuildTrees(join(work, "trees"), { maxTrees: 4, maxBytes: 2 ** 30 });
  const first = await compileKernel(source, buildDir, "CONFIG_A=y\n", { compilerCache: false, trees });
  await trees.keep(buildDir, first.reuseKey, "CONFIG_A=y\n");
  const second = await compileKernel(source, buildDir, "CONFIG_A=y\nCONFIG_B=y\n", { compilerCache: false, trees });
  assert.equal(second.reusedTree?.distance, 1);
  assert.equal(second.failedReuse, undefined);
  assert.equal(await attempts(buildDir), 2);
  assert.equal((await trees.list()).length, 1);
});
