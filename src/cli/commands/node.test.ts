import assert from "node:assert/strict";
import { test } from "node:test";
import { isPithError } from "../../shared/errors.ts";
import { parseTimeout } from "./node.ts";

test("drain's --timeout takes ms, s or m, and refuses anything else with a clear error", () => {
  assert.equal(parseTimeout("90s"), 90_000);
  assert.equal(parseTimeout("5m"), 300_000);
  assert.equal(parseTimeout("250ms"), 250);
  assert.equal(parseTimeout("30"), 30_000);
  for (const bad of ["", "5h", "-1s", "1.5m", "soon"]) {
    assert.throws(() => parseTimeout(bad), (e: unknown) => isPithError(e) && /--timeout must be a duration/.test(e.message), bad);
  }
});
