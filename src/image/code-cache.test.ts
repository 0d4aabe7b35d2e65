import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { makeCodeCache } from "./code-cache.ts";
import { preparedNodeBinary } from "./node-runtime.ts";
import { nodeStartScript } from "./node-start-script.ts";

/** A CommonJS app as esbuild writes one: it prints what it computed, and whether it is node's main module. */
const APP = `"use strict";
const { join } = require("node:path");
function square(n) { return n * n; }
const table = Array.from({ length: 50 }, (_, i) => square(i));
console.log("app ran", table[7], require.main === module, join("a", "b"), process.argv[1]);
`;

function dir(t: TestContext): string {
  const d = realpathSync(mkdtempSync(path.join(tmpdir(), "pith-code-cache-test-")));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Runs the start script as the guest does (same binary), with the app and cache at `d`. */
function start(node: string, d: string, cache: Uint8Array | undefined): { stdout: string; stderr: string } {
  const app = path.join(d, "main.cjs");
  const cacheFile = path.join(d, "main.cjs.v8-cache");
  writeFileSync(app, APP);
  rmSync(cacheFile, { force: true });
  if (cache) writeFileSync(cacheFile, cache);
  writeFileSync(path.join(d, "start.cjs"), nodeStartScript({ app, cache: cacheFile }));
  const out = execFileSync(node, [path.join(d, "start.cjs")], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
  // execFileSync gives stderr only on failure; run again to see it: the script's output is tiny.
  const both = execFileSync("sh", ["-c", `"$0" "$1" 2>&1 1>/dev/null`, node, path.join(d, "start.cjs")], { encoding: "utf8", timeout: 60_000 });
  return { stdout: out, stderr: both };
}

describe("the V8 code cache of a CommonJS app", () => {
  test("is the same bytes every time for the same app (images stay reproducible), and V8 takes it", async (t) => {
    const node = (await preparedNodeBinary()).path;
    const first = await makeCodeCache(node, Buffer.from(APP));
    const second = await makeCodeCache(node, Buffer.from(APP));
    assert.ok("bytes" in first && "bytes" in second, JSON.stringify(first));
    assert.ok(first.bytes.byteLength > 100);
    assert.deepEqual(Buffer.from(first.bytes), Buffer.from(second.bytes));

    const d = dir(t);
    const cache = await makeCodeCache(node, Buffer.from(APP), [], path.join(d, "main.cjs"));
    assert.ok("bytes" in cache);
    const run = start(node, d, cache.bytes);
    assert.equal(run.stdout, `app ran 49 true a/b ${path.join(d, "main.cjs")}\n`);
    assert.equal(run.stderr, "", "an accepted cache is silent");
  });

  test("a damaged, truncated, empty or missing cache: the app starts all the same, without it", async (t) => {
    const node = (await preparedNodeBinary()).path;
    const d = dir(t);
    const made = await makeCodeCache(node, Buffer.from(APP), [], path.join(d, "main.cjs"));
    assert.ok("bytes" in made);
    const good = Buffer.from(made.bytes);
    const flipped = (offset: number): Buffer => {
      const b = Buffer.from(good);
      b[offset] = b[offset]! ^ 0xff;
      return b;
    };
    const damaged: [string, Uint8Array][] = [
      ["a flipped header byte", flipped(4)],
      ["a flipped payload byte", flipped(Math.floor(good.length / 2))],
      ["the last byte flipped", flipped(good.length - 1)],
      ["truncated", good.subarray(0, Math.floor(good.length / 2))],
      ["empty", Buffer.alloc(0)],
      ["garbage", Buffer.alloc(good.length, 0x41)],
    ];
    for (const [what, cache] of damaged) {
      const run = start(node, d, cache);
      assert.equal(run.stdout, `app ran 49 true a/b ${path.join(d, "main.cjs")}\n`, what);
      if (cache.byteLength > 0) assert.match(run.stderr, /V8 refused the app's code cache/, what);
    }
    const none = start(node, d, undefined);
    assert.equal(none.stdout, `app ran 49 true a/b ${path.join(d, "main.cjs")}\n`);
    assert.equal(none.stderr, "", "no cache, nothing to say");
  });

  test("a node that cannot make a cache: none is shipped, and the reason is given", async () => {
    const result = await makeCodeCache("/bin/false", Buffer.from(APP));
    assert.ok("refused" in result);
    assert.match(result.refused, /no code cache/);
  });
});
