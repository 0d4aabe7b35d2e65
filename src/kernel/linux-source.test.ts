import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { execFile } from "../shared/exec.ts";
import { applyPatch, kernelPatches, LINUX_SOURCE_PACKAGE, localVersion, patchesId } from "./linux-source.ts";

const TARBALL = `/usr/src/${LINUX_SOURCE_PACKAGE}.tar.xz`;

test("the patch set has one name: any change to a patch, or another patch, is another source", async () => {
  const patches = await kernelPatches();
  assert.ok(patches.length > 0, "src/kernel/patches holds Pith's patches");
  assert.deepEqual(patches.map((p) => p.name), [...patches.map((p) => p.name)].sort(), "applied in name order");
  const id = patchesId(patches);
  assert.match(id, /^[0-9a-f]{12}$/);
  assert.equal(patchesId(patches), id, "the same patches, the same name");
  assert.notEqual(patchesId([{ ...patches[0]!, text: `${patches[0]!.text}\n` }, ...patches.slice(1)]), id, "an edited patch");
  assert.notEqual(patchesId(patches.slice(1)), id, "a patch fewer");
  assert.equal(localVersion({ version: `6.1.192-3+pith.${id}` }), `-pith.${id}`, "uname -r names the patch set");
});

test("every patch applies to Debian's kernel source, in order, and says why it exists", async (t) => {
  if (!existsSync(TARBALL)) return t.skip(`needs Debian's ${LINUX_SOURCE_PACKAGE}`);
  const patches = await kernelPatches();
  const touched = [...new Set(patches.flatMap((p) => [...p.text.matchAll(/^\+\+\+ b\/(\S+)$/gm)].map((m) => m[1]!)))];
  assert.ok(touched.length > 0, "the patches name the files they change");
  const dir = await mkdtemp(join(tmpdir(), "pith-kernel-patches-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // Only the files the patches touch: the whole tarball is 1.3 GB unpacked.
  await execFile("tar", ["-xf", TARBALL, "-C", dir, ...touched.map((f) => `${LINUX_SOURCE_PACKAGE}/${f}`)]);
  const tree = join(dir, LINUX_SOURCE_PACKAGE);
  for (const patch of patches) {
    assert.match(patch.text.split("\n--- a/")[0]!, /\S[\s\S]{80,}/, `${patch.name} opens with a description`);
    await applyPatch(tree, patch, { check: true });
    await applyPatch(tree, patch);
  }
  assert.match(await readFile(join(tree, "arch/x86/kernel/apic/apic.c"), "utf8"), /early_param\("lapic_timer_hz", parse_lapic_timer_hz\)/);
  assert.doesNotMatch(await readFile(join(tree, "arch/x86/mm/init.c"), "utf8"), /free_reserved_area\(\(void \*\)begin, \(void \*\)end,\s*POISON_FREE_INITMEM/);
  await assert.rejects(applyPatch(tree, patches[0]!, { check: true }), /KERNEL_PATCH_FAILED|failed/, "a patch already applied does not apply again");
});
