import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { KeptBuildTrees } from "./kept-build-trees.ts";

const root = await mkdtemp(join(tmpdir(), "pith-kept-trees-"));
after(() => rm(root, { recursive: true, force: true }));
let made = 0;

/** A stand-in build tree: an object, its .cmd file, Kbuild's config state, and link outputs. */
async function fakeTree(config: string): Promise<string> {
  const dir = join(root, `work-${made++}`);
  await mkdir(join(dir, "kernel"), { recursive: true });
  await mkdir(join(dir, "include/config"), { recursive: true });
  await writeFile(join(dir, ".config"), config);
  await writeFile(join(dir, "kernel/fork.o"), `object for ${config}`);
  await writeFile(join(dir, "kernel/.fork.o.cmd"), "cmd_kernel/fork.o := gcc ...");
  await writeFile(join(dir, "include/config/auto.conf"), config);
  await writeFile(join(dir, "vmlinux"), "x".repeat(1000));
  await writeFile(join(dir, "vmlinux.o"), "x".repeat(1000));
  return dir;
}

const store = async (limits = { maxTrees: 3, maxBytes: 1e9 }) => new KeptBuildTrees(await mkdtemp(join(root, "trees-")), limits);

test("a kept tree is copied whole for the nearest configuration, minus its link outputs, and stays as it was", async () => {
  const trees = await store();
  await trees.keep(await fakeTree("CONFIG_A=y\n"), "key", "CONFIG_A=y\n");
  await trees.keep(await fakeTree("CONFIG_Z=y\n"), "key", "CONFIG_Z=y\n");
  const dest = join(root, "dest-1");
  const out = await trees.checkoutNearest("key", "CONFIG_A=y\nCONFIG_B=y\n", dest);
  assert.equal(out?.distance, 1);
  assert.equal(await readFile(join(dest, "kernel/fork.o"), "utf8"), "object for CONFIG_A=y\n");
  assert.ok(existsSync(join(dest, "kernel/.fork.o.cmd")));
  assert.ok(existsSync(join(dest, "include/config/auto.conf")));
  assert.ok(!existsSync(join(dest, "vmlinux")) && !existsSync(join(dest, "vmlinux.o")));

  await writeFile(join(dest, "kernel/fork.o"), "rebuilt");
  const again = join(root, "dest-2");
  await trees.checkoutNearest("key", "CONFIG_A=y\n", again);
  assert.equal(await readFile(join(again, "kernel/fork.o"), "utf8"), "object for CONFIG_A=y\n");
});

test("no tree is reused under another reuse key (source, compiler or flags)", async () => {
  const trees = await store();
  await trees.keep(await fakeTree("CONFIG_A=y\n"), "gcc-12", "CONFIG_A=y\n");
  const dest = join(root, "dest-other-key");
  assert.equal(await trees.checkoutNearest("gcc-13", "CONFIG_A=y\n", dest), undefined);
  assert.ok(!existsSync(dest));
});

test("a tree without its record, or one a crashed build left half-moved, is never reused and is swept", async () => {
  const trees = await store();
  const unrecorded = join(trees.dir, "0123456789abcdef");
  await mkdir(join(unrecorded, "tree"), { recursive: true });
  const halfMoved = join(trees.dir, ".incoming-99999-dead");
  await mkdir(join(halfMoved, "tree"), { recursive: true });
  await writeFile(join(halfMoved, "kept.json"), JSON.stringify({ id: ".incoming-99999-dead", reuseKey: "key", config: "", bytes: 1, lastUsedAt: 1 }));
  const corrupt = join(trees.dir, "fedcba9876543210");
  await mkdir(join(corrupt, "tree"), { recursive: true });
  await writeFile(join(corrupt, "kept.json"), "{ not json");

  assert.equal(await trees.checkoutNearest("key", "", join(root, "dest-none")), undefined);
  assert.deepEqual(await readdir(trees.dir), []);
});

test("beyond the limits the least recently used tree goes; a checkout counts as a use", async () => {
  const trees = await store({ maxTrees: 2, maxBytes: 1e9 });
  await trees.keep(await fakeTree("CONFIG_A=y\n"), "key", "CONFIG_A=y\n");
  await trees.keep(await fakeTree("CONFIG_B=y\n"), "key", "CONFIG_B=y\n");
  await trees.checkoutNearest("key", "CONFIG_A=y\n", join(root, "dest-lru"));
  await trees.keep(await fakeTree("CONFIG_C=y\n"), "key", "CONFIG_C=y\n");
  const configs = (await trees.list()).map((t) => t.config).sort();
  assert.deepEqual(configs, ["CONFIG_A=y\n", "CONFIG_C=y\n"]);
});

test("a size limit smaller than one tree keeps nothing", async () => {
  const trees = await store({ maxTrees: 3, maxBytes: 10 });
  await trees.keep(await fakeTree("CONFIG_A=y\n"), "key", "CONFIG_A=y\n");
  assert.deepEqual(await trees.list(), []);
});

test("builds at once each get a copy of their own", async () => {
  const trees = await store();
  await trees.keep(await fakeTree("CONFIG_A=y\n"), "key", "CONFIG_A=y\n");
  const dests = [0, 1, 2, 3].map((i) => join(root, `dest-concurrent-${i}`));
  const outs = await Promise.all(dests.map((d) => trees.checkoutNearest("key", "CONFIG_A=y\n", d)));
  assert.ok(outs.every((o) => o?.distance === 0));
  for (const d of dests) assert.equal(await readFile(join(d, "kernel/fork.o"), "utf8"), "object for CONFIG_A=y\n");
});

test("keeping nothing (maxTrees 0) reuses nothing and leaves the work dir alone", async () => {
  const trees = await store({ maxTrees: 0, maxBytes: 1e9 });
  const work = await fakeTree("CONFIG_A=y\n");
  await trees.keep(work, "key", "CONFIG_A=y\n");
  assert.ok(existsSync(join(work, "kernel/fork.o")));
  assert.equal(await trees.checkoutNearest("key", "CONFIG_A=y\n", join(root, "dest-off")), undefined);
});
