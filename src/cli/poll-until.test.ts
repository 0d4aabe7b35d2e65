import assert from "node:assert/strict";
import { test } from "node:test";
import { pollUntil } from "./poll-until.ts";

/** A look that returns the given states in turn, then the last one forever. */
function states<S>(...values: S[]): { look: () => Promise<S>; calls: () => number } {
  let i = 0;
  return { look: async () => values[Math.min(i++, values.length - 1)]!, calls: () => i };
}

test("pollUntil returns the first done state and writes a progress line only when the state's line changes", async () => {
  const { look, calls } = states(3, 3, 2, 2, 0);
  const lines: string[] = [];
  const result = await pollUntil(look, (n) => n === 0, {
    timeoutMs: 10_000,
    everyMs: 1,
    progress: { line: (n) => (n ? `${n} left` : undefined), write: (l) => lines.push(l) },
  });
  assert.deepEqual(result, { state: 0, done: true, said: 2 });
  assert.deepEqual(lines, ["3 left", "2 left"]);
  assert.equal(calls(), 5);
});

test("pollUntil gives up at its timeout with the last state, having looked at the deadline and not long after", async () => {
  let n = 0;
  const started = Date.now();
  const result = await pollUntil(async () => ++n, () => false, { timeoutMs: 120, everyMs: 50 });
  const took = Date.now() - started;
  assert.equal(result.done, false);
  assert.equal(result.state, n);
  assert.ok(n >= 3 && n <= 5, `looked ${n} times in 120 ms at 50 ms intervals`);
  assert.ok(took >= 120 && took < 120 + 50, `returned after ${took} ms`);
});

test("pollUntil with a timeout of 0 looks exactly once", async () => {
  const { look, calls } = states("rolling");
  const lines: string[] = [];
  const result = await pollUntil(look, (s) => s === "done", { timeoutMs: 0, everyMs: 1000, progress: { line: (s) => s, write: (l) => lines.push(l) } });
  assert.deepEqual(result, { state: "rolling", done: false, said: 1 });
  assert.deepEqual(lines, ["rolling"]);
  assert.equal(calls(), 1);
});

test("pollUntil passes on what a look throws, without looking again", async () => {
  let calls = 0;
  await assert.rejects(
    pollUntil(async () => {
      calls++;
      throw new Error("control plane unreachable");
    }, () => true, { timeoutMs: 1000, everyMs: 1 }),
    /control plane unreachable/,
  );
  assert.equal(calls, 1);
});
