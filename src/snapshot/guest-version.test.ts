import assert from "node:assert/strict";
import { test } from "node:test";
import { guestSources, guestVersion } from "./guest-version.ts";

test("the snapshot key's guest version covers init and every file of the guest library, not its tests", async () => {
  const sources = await guestSources();
  assert.ok(sources.includes("src/guest/init/init.c"));
  assert.ok(sources.includes("src/guest/index.ts"));
  assert.ok(sources.includes("src/guest/scavenge.ts"), "a file the library imports changes what a snapshot holds too");
  assert.ok(!sources.some((f) => f.endsWith(".test.ts")));
  assert.match(await guestVersion(), /^[0-9a-f]{16}$/);
});
