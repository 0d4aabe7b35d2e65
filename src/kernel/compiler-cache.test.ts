import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { execFile } from "../shared/exec.ts";
import { compilerCacheEnabled, compilerCacheFor, parseStatsLog } from "./compiler-cache.ts";

test("the statistics log counts each compile once, and hits of either kind", () => {
  const log = ["# a.c", "cache_miss", "direct_cache_miss", "# b.c", "direct_cache_hit", "local_storage_hit", "# c.c", "preprocessed_cache_hit", ""].join("\n");
  assert.deepEqual(parseStatsLog(log), { compiles: 3, hits: 2 });
  assert.deepEqual(parseStatsLog(""), { compiles: 0, hits: 0 });
});

test("PITH_KERNEL_CCACHE=off builds without ccache", () => {
  assert.equal(compilerCacheEnabled({ PITH_KERNEL_CCACHE: "off" }), false);
});

const skip = existsSync("/usr/bin/ccache") ? false : "ccache is missing: apt-get install ccache (scripts/setup.sh does)";

test("a compile through the kernel's ccache is answered from the cache the second time, with the same object", { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "pith-ccache-"));
  try {
    const source = join(dir, "a.c");
    await writeFile(source, "int answer(void) { return 42; }\n");
    const cache = (await compilerCacheFor(dir, join(dir, "cache")))!;
    assert.ok(cache, "ccache is on");
    const [ccache, compiler] = cache.makeArgs[0]!.slice("CC=".length).split(" ");
    const objects: Buffer[] = [];
    for (const out of ["one.o", "two.o"]) {
      await execFile(ccache!, [compiler!, "-c", source, "-o", join(dir, out)], { env: { ...process.env, ...cache.env }, cwd: dir });
      objects.push(await readFile(join(dir, out)));
    }
    assert.deepEqual(await cache.usage(), { compiles: 2, hits: 1 });
    assert.ok(objects[0]!.equals(objects[1]!), "a hit gives the compile's bytes");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
