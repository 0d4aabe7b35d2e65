import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { execFile } from "../shared/exec.ts";
import { ensureVolumeFile, freeBytes } from "./volume-file.ts";

test("a volume file is a sparse ext4 filesystem of the declared size, private, made once", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "pith-volume-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "data.ext4");
  assert.equal(await ensureVolumeFile(path, 64), true);
  const info = await stat(path);
  assert.equal(info.size, 64 * 1024 * 1024);
  assert.ok(info.blocks * 512 < info.size / 2, `sparse: ${info.blocks * 512} bytes allocated`);
  assert.equal(info.mode & 0o777, 0o600);
  const { stdout } = await execFile("dumpe2fs", ["-h", path]);
  assert.match(stdout, /has_journal/);
  assert.match(stdout, /Filesystem volume name:\s+pith-volume/);
  assert.equal(await ensureVolumeFile(path, 64), false, "an existing volume is kept as it is");
});

test("a volume bigger than the free disk is refused and nothing is left behind", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "pith-volume-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const tooBig = Math.ceil((await freeBytes(dir)) / 1024 / 1024) + 1024;
  await assert.rejects(ensureVolumeFile(join(dir, "huge.ext4"), tooBig), (e: Error) => /does not fit: .* MiB free/.test(e.message));
  assert.deepEqual(await readdir(dir), []);
});
