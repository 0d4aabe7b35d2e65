import assert from "node:assert/strict";
import { test } from "node:test";
import { isPithError } from "../shared/errors.ts";
import { keepLimits } from "./kept-trees-config.ts";

test("kept trees default to 6 within 1 GiB; the environment sets either, 0 keeps none", () => {
  assert.deepEqual(keepLimits({}), { maxTrees: 6, maxBytes: 2 ** 30 });
  assert.deepEqual(keepLimits({ PITH_KERNEL_KEEP_TREES: "0", PITH_KERNEL_TREES_MAX_MB: "512" }), { maxTrees: 0, maxBytes: 512 * 2 ** 20 });
});

test("a limit that is not a whole number is a user error naming the variable", () => {
  for (const bad of ["-1", "three", "1e3", "2.5", " 3"]) {
    assert.throws(
      () => keepLimits({ PITH_KERNEL_KEEP_TREES: bad }),
      (e: unknown) => isPithError(e) && e.kind === "user" && e.message.includes("PITH_KERNEL_KEEP_TREES"),
    );
  }
});
