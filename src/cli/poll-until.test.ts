import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiError } from "../client/api-error.ts";
import { isPithError } from "../shared/errors.ts";
import { lastLookNote, pollUntil } from "./poll-until.ts";

/** A look that returns the given states in turn, then the last one forever. */
function states<S>(...values: S[]): { look: () => Promise<S>; calls: () => number } {
  let i = 0;
  return { look: async () => values[Math.min(i++, values.length - 1)]!, calls: () => i };
}

/** What the client throws when the server is not there. */
const unreachable = (): ApiError => new ApiError(0, "Unavailable", "cannot reach the server at http://127.0.0.1:1");

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

test("pollUntil gives up at its timeout with the last state, having looked last at the deadline", async () => {
  const looks: number[] = [];
  const started = Date.now();
  const result = await pollUntil(async () => looks.push(Date.now()), () => false, { timeoutMs: 120, everyMs: 50 });
  assert.equal(result.done, false);
  assert.equal(result.state, looks.length);
  assert.ok(looks.length >= 3 && looks.length <= 5, `looked ${looks.length} times in 120 ms at 50 ms intervals`);
  assert.ok(looks.at(-1)! - started >= 120, `the last look was ${looks.at(-1)! - started} ms in, before the deadline`);
});

test("pollUntil with a timeout of 0 looks exactly once", async () => {
  const { look, calls } = states("rolling");
  const lines: string[] = [];
  const result = await pollUntil(look, (s) => s === "done", { timeoutMs: 0, everyMs: 1000, progress: { line: (s) => s, write: (l) => lines.push(l) } });
  assert.deepEqual(result, { state: "rolling", done: false, said: 1 });
  assert.deepEqual(lines, ["rolling"]);
  assert.equal(calls(), 1);
});

/** pollUntil with a look that always throws `error`: it must reject with that very error; how many looks and how long it took. */
async function rejectsWith(error: Error, timeoutMs: number): Promise<{ calls: number; ms: number }> {
  let calls = 0;
  const started = Date.now();
  await assert.rejects(
    pollUntil(async () => {
      calls++;
      throw error;
    }, () => true, { timeoutMs, everyMs: 1 }),
    (e: unknown) => e === error,
  );
  return { calls, ms: Date.now() - started };
}

test("pollUntil passes on an error that is not the API's absence at once, without looking again", async () => {
  for (const error of [new Error("a bug"), new ApiError(403, "Forbidden", "this token may not list machines")]) {
    assert.equal((await rejectsWith(error, 1000)).calls, 1);
  }
});

test("pollUntil looks again after the API was unreachable or failing, and reaches done", async () => {
  let calls = 0;
  const result = await pollUntil(async () => {
    calls++;
    if (calls === 2) throw unreachable();
    if (calls === 3) throw new ApiError(503, "Unavailable", "the store is unavailable");
    return calls;
  }, (n) => n === 4, { timeoutMs: 10_000, everyMs: 1 });
  assert.deepEqual(result, { state: 4, done: true, said: 0 });
});

test("at its timeout after a failed look, pollUntil returns the last state it saw and why the last look failed", async () => {
  let calls = 0;
  const result = await pollUntil(async () => {
    if (++calls > 1) throw unreachable();
    return "2 machines left";
  }, () => false, { timeoutMs: 60, everyMs: 10 });
  assert.equal(result.done, false);
  assert.equal(result.state, "2 machines left");
  assert.match(lastLookNote(result), /^ \(the last look failed: .*cannot reach the server/);
  assert.equal(lastLookNote({ ...result, lastError: undefined }), "");
});

test("a first look that fails ends the wait at once: a wrong --server or token is said now, not at the timeout", async () => {
  for (const error of [unreachable(), new ApiError(502, "BadResponse", "GET /api/v1/machines: the server answered with something that is not JSON")]) {
    const { calls, ms } = await rejectsWith(error, 10_000);
    assert.equal(calls, 1);
    assert.ok(ms < 1000);
  }
});

test("a look that stalls is abandoned at the deadline (or the floor), not after the client's own 30 s", async () => {
  // AbortSignal.timeout's timer does not hold the process open; a real look's socket does.
  const keepAlive = setTimeout(() => undefined, 10_000);
  let aborted = 0;
  const stalls = (signal: AbortSignal): Promise<never> =>
    new Promise((_resolve, reject) => signal.addEventListener("abort", () => {
      aborted++;
      reject(signal.reason);
    }));
  try {
    // The first look stalls: nothing seen, so the wait ends with why.
    let started = Date.now();
    await assert.rejects(pollUntil(stalls, () => true, { timeoutMs: 100, everyMs: 10, lookFloorMs: 150 }), (e: unknown) => isPithError(e) && e.code === "API_TIMEOUT");
    let took = Date.now() - started;
    assert.ok(took >= 150 && took < 5000, `abandoned after ${took} ms`);

    // A later look stalls: the last state seen is returned at the deadline, with why.
    let calls = 0;
    started = Date.now();
    const result = await pollUntil((signal) => (++calls === 1 ? Promise.resolve("1 left") : stalls(signal)), () => false, { timeoutMs: 300, everyMs: 10, lookFloorMs: 50 });
    took = Date.now() - started;
    assert.equal(result.state, "1 left");
    assert.match(lastLookNote(result), /the API did not answer in time/);
    assert.ok(took >= 300 && took < 5000, `returned after ${took} ms`);
    assert.equal(aborted, 2);
  } finally {
    clearTimeout(keepAlive);
  }
});
