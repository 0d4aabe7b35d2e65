import assert from "node:assert/strict";
import { mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { UidPool, uidRangeFromEnv } from "./uid-pool.ts";

test("uids are claimed once each, held by their machine, and free again when released", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "pith-uids-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const pool = new UidPool({ first: 970_000, count: 3 }, dir);
  const claimed = [await pool.claim("a"), await pool.claim("b"), await pool.claim("c")];
  assert.equal(new Set(claimed).size, 3);
  assert.ok(claimed.every((u) => u >= 970_000 && u < 970_003));
  await assert.rejects(pool.claim("d"), /every uid in 970000-970002 belongs to a running machine/);
  assert.equal(await pool.holder(claimed[1]!), "b");
  await pool.release(claimed[1]!, "someone-else");
  assert.equal(await pool.holder(claimed[1]!), "b", "only the holder releases a uid");
  await pool.release(claimed[1]!, "b");
  assert.equal(await pool.claim("d"), claimed[1]);
});

test("an old claim with no process running as its uid is a machine that is gone; a fresh one is not", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "pith-uids-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const pool = new UidPool({ first: 970_100, count: 1 }, dir);
  await writeFile(join(dir, "970100"), "crashed-agent/m1\n");
  await assert.rejects(pool.claim("m2"), /belongs to a running machine/, "a claim younger than a start is kept");
  const old = new Date(Date.now() - 5 * 60_000);
  await utimes(join(dir, "970100"), old, old);
  assert.equal(await pool.isFree(970_100), true, "a stale claim of a uid no process runs as is free");
  assert.equal(await pool.claim("m2"), 970_100);
  assert.equal(await pool.holder(970_100), "m2");
  assert.equal(await pool.isFree(970_100), false, "a fresh claim is not");
  await pool.release(970_100, "m2");
  assert.equal(await pool.isFree(970_100), true);
});

test("PITH_JAIL_UIDS is a range of uids at or above 1000", () => {
  assert.deepEqual(uidRangeFromEnv("2000000-2000099"), { first: 2_000_000, count: 100 });
  assert.deepEqual(uidRangeFromEnv(undefined), { first: 970_000, count: 10_000 });
  assert.throws(() => uidRangeFromEnv("0-100"), /not a range of uids Pith may own/);
  assert.throws(() => uidRangeFromEnv("5000-4000"), /not a range/);
  assert.throws(() => uidRangeFromEnv("../etc"), /not a range/);
});
