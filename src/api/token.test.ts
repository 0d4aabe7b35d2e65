import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ensureToken } from "./token.ts";

test("ensureToken creates a 0600 token file once and returns the same token afterwards", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pith-token-"));
  try {
    const first = await ensureToken(dir);
    assert.match(first, /^[0-9a-f]{64}$/);
    assert.equal((await stat(join(dir, "token"))).mode & 0o777, 0o600);
    assert.equal((await readFile(join(dir, "token"), "utf8")).trim(), first);
    assert.equal(await ensureToken(dir), first);
    const concurrent = await Promise.all([ensureToken(dir), ensureToken(dir)]);
    assert.deepEqual(concurrent, [first, first]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("ensureToken tightens a token file that others can read", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pith-token-"));
  try {
    const token = await ensureToken(dir);
    await chmod(join(dir, "token"), 0o644);
    assert.equal(await ensureToken(dir), token);
    assert.equal((await stat(join(dir, "token"))).mode & 0o777, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("two servers starting at once on a fresh directory agree on one token", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pith-token-"));
  try {
    const tokens = await Promise.all(Array.from({ length: 8 }, () => ensureToken(join(dir, "home"))));
    assert.equal(new Set(tokens).size, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a file that holds no token is an error that says how to fix it", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pith-token-"));
  try {
    await writeFile(join(dir, "token"), "garbage\n", { mode: 0o600 });
    await assert.rejects(ensureToken(dir), /does not hold an API token/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
