import assert from "node:assert/strict";
import { test } from "node:test";
import { parseTcgCacheMiB } from "./tcg-cache-flag.ts";

test("--tcg-cache takes a whole number of MiB within its bounds, and says what it wanted otherwise", () => {
  assert.equal(parseTcgCacheMiB("32"), 32);
  assert.equal(parseTcgCacheMiB("16"), 16);
  assert.equal(parseTcgCacheMiB("1024"), 1024);
  for (const bad of ["8", "2048", "32.5", "-32", "", "32M", "0x20", "1e2"]) {
    assert.throws(() => parseTcgCacheMiB(bad), /--tcg-cache must be a whole number of MiB from 16 to 1024/, bad);
  }
});
