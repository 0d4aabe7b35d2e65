import assert from "node:assert/strict";
import { test } from "node:test";
import { until } from "../proxy/test-support.ts";
import { WorkQueue, type WorkOutcome } from "./work-queue.ts";

/** A promise the test settles when it chooses. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

test("a key added many times before its turn is worked on once; added during its work, once more afterwards", async () => {
  const runs: string[] = [];
  let hold = gate();
  const queue = new WorkQueue({
    process: async (key) => {
      runs.push(key);
      await hold.promise;
    },
  });
  queue.add("a");
  queue.add("a");
  queue.add("a");
  await until(() => runs.length === 1, 2000, "the first run");
  queue.add("a");
  queue.add("a");
  const first = hold;
  hold = gate();
  first.open();
  await until(() => runs.length === 2, 2000, "the second run");
  hold.open();
  await until(() => queue.pending === 0, 2000, "the queue to drain");
  assert.deepEqual(runs, ["a", "a"]);
  queue.stop();
});

test("one worker per key: with room for several, a key never runs alongside itself, other keys do", async () => {
  const active = new Set<string>();
  let overlap = false;
  let together = 0;
  const holds = new Map<string, ReturnType<typeof gate>>();
  const runs: string[] = [];
  const queue = new WorkQueue({
    concurrency: 4,
    process: async (key) => {
      if (active.has(key)) overlap = true;
      active.add(key);
      together = Math.max(together, active.size);
      runs.push(key);
      const hold = gate();
      holds.set(key, hold);
      await hold.promise;
      active.delete(key);
    },
  });
  queue.add("a");
  queue.add("b");
  await until(() => active.size === 2, 2000, "a and b at once");
  queue.add("a"); // while a runs
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(runs, ["a", "b"], "the second a waits for the first");
  holds.get("a")!.open();
  await until(() => runs.length === 3, 2000, "a's second run");
  holds.get("a")!.open();
  holds.get("b")!.open();
  await until(() => queue.pending === 0, 2000, "the queue to drain");
  assert.equal(overlap, false);
  assert.equal(together, 2);
  queue.stop();
});

test("failures back off per key, doubling up to the limit, and a success forgets them", async () => {
  // a fails 4 times, succeeds, then fails once more; b fails once, alongside.
  const script: Record<string, boolean[]> = { a: [false, false, false, false, true, false, true], b: [false, true] };
  const attempts: Record<string, number[]> = { a: [], b: [] };
  const delays: Record<string, number[]> = { a: [], b: [] };
  const queue = new WorkQueue({
    concurrency: 2,
    backoff: { initialMs: 10, maxMs: 40 },
    process: async (key): Promise<WorkOutcome> => {
      attempts[key]!.push(performance.now());
      if (!script[key]!.shift()) throw new Error(`${key} failed`);
    },
    onError: (key, _error, retryInMs) => delays[key]!.push(retryInMs),
  });
  queue.add("a");
  queue.add("b");
  await until(() => attempts.a!.length === 5 && attempts.b!.length === 2, 5000, "a's success");
  assert.deepEqual(delays.a, [10, 20, 40, 40], "doubling, at most maxMs");
  assert.deepEqual(delays.b, [10], "b's back-off is its own");
  assert.equal(queue.failures("a"), 0, "a success forgets the failures");
  // Each retry came no sooner than its delay (timers may be late, never early; 1 ms of clock slack).
  for (let i = 1; i < 5; i++) assert.ok(attempts.a![i]! - attempts.a![i - 1]! >= delays.a![i - 1]! - 1, `retry ${i} waited its delay`);

  queue.add("a");
  await until(() => attempts.a!.length === 7, 2000, "a's failure after its success, and the retry");
  assert.deepEqual(delays.a, [10, 20, 40, 40, 10], "after a success the back-off starts again");
  queue.stop();
});

test("a key's answer brings it back later; addWithin keeps a sooner turn, addAfter replaces it", async () => {
  const runs: [string, number][] = [];
  const t0 = performance.now();
  let requeue: number | undefined = 30;
  const queue = new WorkQueue({
    process: async (key) => {
      runs.push([key, performance.now() - t0]);
      if (key === "answer" && requeue !== undefined) {
        const ms = requeue;
        requeue = undefined;
        return { requeueAfterMs: ms };
      }
    },
  });
  queue.add("answer");
  await until(() => runs.filter(([k]) => k === "answer").length === 2, 2000, "the requeued run");
  const [first, second] = runs.filter(([k]) => k === "answer");
  assert.ok(second![1] - first![1] >= 29, "requeued after its delay");

  queue.addWithin("burst", 20);
  queue.addWithin("burst", 5000); // later: keeps the 20 ms turn
  queue.addWithin("burst", 20);
  await until(() => runs.some(([k]) => k === "burst"), 2000, "the burst's one run");
  queue.addAfter("moved", 5000);
  queue.addAfter("moved", 10); // the latest answer wins
  await until(() => runs.some(([k]) => k === "moved"), 2000, "the moved key");
  await until(() => queue.pending === 0, 2000, "the queue to drain");
  assert.equal(runs.filter(([k]) => k === "burst").length, 1);
  assert.equal(runs.filter(([k]) => k === "moved").length, 1);
  queue.stop();
});

test("urgent keys go before the others, also when added during their own work", async () => {
  const runs: string[] = [];
  const hold = gate();
  const queue = new WorkQueue({
    process: async (key) => {
      runs.push(key);
      if (key === "x" && runs.length === 1) await hold.promise;
    },
  });
  queue.add("x");
  await until(() => runs.length === 1, 2000, "x to start");
  queue.add("a");
  queue.add("b");
  queue.add("report", { urgent: true });
  queue.add("b", { urgent: true }); // already waiting: moves ahead
  queue.add("x", { urgent: true }); // x is being worked on: its next run is urgent too
  hold.open();
  await until(() => queue.pending === 0, 2000, "the queue to drain");
  assert.deepEqual(runs, ["x", "report", "b", "x", "a"]);
  queue.stop();
});
