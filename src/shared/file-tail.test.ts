import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { until } from "../proxy/test-support.ts";
import { logTailText, readLogTail, rotatedPath } from "./file-tail.ts";
import { followFile } from "./follow-file.ts";

const tempLog = (t: TestContext): string => {
  const dir = mkdtempSync(join(tmpdir(), "pith-tail-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "console.log");
};

const text = async (path: string, max: number): Promise<string> => {
  let out = "";
  for await (const chunk of readLogTail(path, max)) out += (chunk as Buffer).toString();
  return out;
};

test("a tail is the newest bytes, from the rotated file first, never more than asked", async (t) => {
  const path = tempLog(t);
  assert.equal(await text(path, 10), "");
  writeFileSync(rotatedPath(path), "0123456789");
  writeFileSync(path, "abcdef");
  assert.equal(await text(path, 8), "89abcdef");
  assert.equal(await text(path, 4), "cdef");
  assert.equal(await text(path, 100), "0123456789abcdef");
  writeFileSync(path, "x".repeat(300_000));
  const big = await text(path, 200_000);
  assert.equal(big.length, 200_000);
  assert.equal((await logTailText(path, 5)).length, 5);
});

test("following survives a truncation (a rotation) and can start from a tail", async (t) => {
  const path = tempLog(t);
  writeFileSync(path, "old old old\n");
  let seen = "";
  const follower = followFile(path, (chunk) => (seen += chunk.toString()), 5, { fromTail: 4 });
  t.after(() => follower.stop());
  await until(() => seen === "old\n", 5000, "the tail");
  appendFileSync(path, "one\n");
  await until(() => seen.endsWith("one\n"), 5000, "the append");
  truncateSync(path, 0);
  appendFileSync(path, "two\n");
  await until(() => seen.endsWith("two\n"), 5000, "what follows the truncation");
  assert.equal(seen, "old\none\ntwo\n");
});
