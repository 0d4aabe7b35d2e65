import assert from "node:assert/strict";
import { test } from "node:test";
import { isPithError } from "../shared/errors.ts";
import { formatTimeout, parseTimeoutFlag } from "./timeout-flag.ts";

test("--timeout takes ms, s or m (bare numbers are seconds), and refuses anything else with a clear error", () => {
  assert.equal(parseTimeoutFlag("90s"), 90_000);
  assert.equal(parseTimeoutFlag("5m"), 300_000);
  assert.equal(parseTimeoutFlag("250ms"), 250);
  assert.equal(parseTimeoutFlag("300"), 300_000);
  assert.equal(parseTimeoutFlag("1440m"), 86_400_000);
  assert.equal(parseTimeoutFlag("1.5"), 1500);
  assert.equal(parseTimeoutFlag("1.5m"), 90_000);
  for (const bad of ["", "5h", "-1s", ".5s", "1.s", "soon", "0", "0s", "0.0001s", "1441m", "99999999999999999999"]) {
    assert.throws(() => parseTimeoutFlag(bad), (e: unknown) => isPithError(e) && /--timeout must be a duration/.test(e.message), bad);
  }
});

test("a timeout is shown as the flag would take it, and reads back to the same value", () => {
  for (const [ms, text] of [[250, "250ms"], [90_000, "90s"], [300_000, "5m"], [1500, "1500ms"], [86_400_000, "1440m"]] as const) {
    assert.equal(formatTimeout(ms), text);
    assert.equal(parseTimeoutFlag(text), ms);
  }
});
