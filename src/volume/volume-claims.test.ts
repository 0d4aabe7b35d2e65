import assert from "node:assert/strict";
import { mkdtemp, rm, symlink, utimes, writeFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { VolumeClaims } from "./volume-claims.ts";

async function setup(t: import("node:test").TestContext) {
  const dir = await mkdtemp(join(tmpdir(), "pith-claims-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const volume = join(dir, "data.ext4");
  await writeFile(volume, "");
  return { dir, volume, claims: new VolumeClaims(join(dir, "claims")) };
}

test("never two writers: a volume held by a starting or running machine is refused to any other", async (t) => {
  const { dir, volume, claims } = await setup(t);
  await claims.claim("test/a", volume);
  await claims.claim("test/a", volume); // the holder may claim again
  await assert.rejects(claims.claim("test/b", volume), /attached to machine test\/a; a volume has one writer at a time/);
  // Another spelling of the same file is the same volume.
  await symlink(volume, join(dir, "alias.ext4"));
  await assert.rejects(claims.claim("test/b", join(dir, "alias.ext4")), /attached to machine test\/a/);
  assert.equal(await claims.holder(volume), "test/a");
});

test("released, or left by a machine that is gone, the volume goes to the next machine", async (t) => {
  const { dir, volume, claims } = await setup(t);
  await claims.claim("test/a", volume);
  await claims.release("test/b", volume); // only the holder can release
  assert.equal(await claims.holder(volume), "test/a");
  await claims.release("test/a", volume);
  await claims.claim("test/b", volume);
  // test/b never ran a QEMU: once its claim is older than a starting machine's, it is stale.
  const [file] = await readdir(join(dir, "claims"));
  const old = new Date(Date.now() - 120_000);
  await utimes(join(dir, "claims", file!), old, old);
  await claims.claim("test/c", volume);
  assert.equal(await claims.holder(volume), "test/c");
});

test("claimAll is all or none", async (t) => {
  const { dir, volume, claims } = await setup(t);
  const other = join(dir, "other.ext4");
  await writeFile(other, "");
  await claims.claim("test/a", other);
  await assert.rejects(claims.claimAll("test/b", [volume, other]), /attached to machine test\/a/);
  assert.equal(await claims.holder(volume), undefined, "the first volume was given back");
});
