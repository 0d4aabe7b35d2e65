import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { preparedImages } from "./images.ts";

test("only the digests a test run names are used: a file an interrupted run left is never read", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "pith-test-images-"));
  const saved = { artifacts: process.env.PITH_TEST_ARTIFACTS, images: process.env.PITH_TEST_IMAGES };
  t.after(async () => {
    for (const [name, value] of [["PITH_TEST_ARTIFACTS", saved.artifacts], ["PITH_TEST_IMAGES", saved.images]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await rm(dir, { recursive: true, force: true });
  });
  process.env.PITH_TEST_ARTIFACTS = dir;
  // What earlier versions shared, and an interrupted run left: images of older sources.
  await writeFile(join(dir, "images.json"), JSON.stringify({ "/app": "sha256:old" }));
  delete process.env.PITH_TEST_IMAGES;
  assert.deepEqual(preparedImages(), {}, "a test run by hand builds its own images");

  const thisRun = join(dir, "images-123.json");
  process.env.PITH_TEST_IMAGES = thisRun;
  assert.deepEqual(preparedImages(), {}, "named but not written yet: nothing prepared");
  await writeFile(thisRun, JSON.stringify({ "/app": "sha256:new" }));
  assert.deepEqual(preparedImages(), { "/app": "sha256:new" }, "the run's own file");
});
