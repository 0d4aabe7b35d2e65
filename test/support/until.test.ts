import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { GiveUp, until } from "./until.ts";

/** How long `run` took, with what it resolved to. */
async function timed<V>(run: () => Promise<V>): Promise<{ value: V; ms: number }> {
  const started = performance.now();
  const value = await run();
  return { value, ms: performance.now() - started };
}

/** The error the wait `run` starts rejects with, and how long after it started. */
async function rejection(run: () => Promise<unknown>): Promise<{ error: Error; ms: number }> {
  const started = performance.now();
  const error = await run().then(
    () => assert.fail("expected the wait to fail"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof Error, `not an Error: ${String(error)}`);
  return { error, ms: performance.now() - started };
}

/** Every wait here ends in well under a second; a helper that hangs fails the test instead. */
const BOUNDED = { timeout: 5000 };

const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

test("resolves with the probe's first value, taking undefined and false as not yet", BOUNDED, async () => {
  const answers = [undefined, false, { id: "m1" }, { id: "later" }];
  let calls = 0;
  const { value, ms } = await timed(() => until("m1 appears", () => answers[calls++], { timeoutMs: 2000, everyMs: 5 }));
  assert.deepEqual(value, { id: "m1" });
  assert.equal(calls, 3, "no look after the one that gave a value");
  assert.ok(ms < 1000, `took ${ms} ms for three looks 5 ms apart`);
});

test("sync and async probes both work, and a falsy value other than false is a value", BOUNDED, async () => {
  assert.equal(await until("sync", () => "sync value", { timeoutMs: 1000 }), "sync value");
  let calls = 0;
  const asyncValue = await until("async", async () => {
    await delay(5);
    return ++calls === 2 ? 0 : undefined;
  }, { timeoutMs: 1000 });
  assert.equal(asyncValue, 0);
  assert.equal(calls, 2);
});

test("after the timeout it rejects saying what it waited for, the context and the probe's last error", BOUNDED, async () => {
  let contextAsked = 0;
  const refused = new Error("connect ECONNREFUSED 127.0.0.1:7070");
  const { error, ms } = await rejection(() =>
    until(() => "the server answers", () => {
      throw refused;
    }, { timeoutMs: 80, everyMs: 5, retryErrors: true, context: async () => `log: listening soon (${++contextAsked})` }),
  );
  assert.match(error.message, /^timed out after 80 ms: the server answers\nlog: listening soon \(1\)\nlast probe error: Error: connect ECONNREFUSED 127\.0\.0\.1:7070$/);
  assert.equal(error.cause, refused);
  assert.equal(contextAsked, 1);
  assert.ok(ms >= 79 && ms < 1000, `failed after ${ms} ms`);
});

test("the context is asked for only on failure", BOUNDED, async () => {
  let contextAsked = 0;
  await until("ready", () => true, { timeoutMs: 100, context: () => `asked ${++contextAsked}` });
  assert.equal(contextAsked, 0);
});

test("a probe that throws ends the wait at once with its error, unless errors are retried", BOUNDED, async () => {
  const broken = new Error("machine failed: no kernel");
  let calls = 0;
  const { error, ms } = await rejection(() =>
    until("the machine is ready", () => {
      calls++;
      throw broken;
    }, { timeoutMs: 2000 }),
  );
  assert.equal(error, broken);
  assert.equal(calls, 1);
  assert.ok(ms < 1000, `failed after ${ms} ms`);
});

test("a GiveUp ends the wait at once even when errors are retried", BOUNDED, async () => {
  let calls = 0;
  const { error, ms } = await rejection(() =>
    until("the machine is ready", () => {
      calls++;
      if (calls === 1) throw new Error("the API is not up yet");
      throw new GiveUp("the machine failed: no kernel");
    }, { timeoutMs: 2000, everyMs: 5, retryErrors: true }),
  );
  assert.ok(error instanceof GiveUp);
  assert.equal(calls, 2, "the first error was retried, the GiveUp was not");
  assert.ok(ms < 1000, `failed after ${ms} ms`);
});

test("a failing promise that rejects ends the wait at once with its error", BOUNDED, async () => {
  const died = new Error("the writer died");
  // Timed from the failing promise's making: a busy host may start the wait itself a little later.
  const began = performance.now();
  const failing = delay(20).then(() => Promise.reject(died));
  const { error } = await rejection(() => until("never", () => false, { timeoutMs: 2000, failing }));
  const ms = performance.now() - began;
  assert.equal(error, died);
  assert.ok(ms >= 15 && ms < 1000, `failed after ${ms} ms`);
});

test("a failing promise that rejects after the wait is over is no unhandled rejection", BOUNDED, async () => {
  const unhandled: unknown[] = [];
  const record = (reason: unknown): void => void unhandled.push(reason);
  process.on("unhandledRejection", record);
  try {
    const failing = delay(10).then(() => Promise.reject(new Error("later")));
    assert.equal(await until("ready", () => "yes", { timeoutMs: 1000, failing }), "yes");
    await delay(30);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", record);
  }
});

test("a probe call that never settles is given up after probeTimeoutMs and called again", BOUNDED, async () => {
  let calls = 0;
  const { value, ms } = await timed(() =>
    until("an answer", () => (++calls === 1 ? new Promise<string>(() => {}) : Promise.resolve("answer")), { timeoutMs: 2000, probeTimeoutMs: 30, everyMs: 5 }),
  );
  assert.equal(value, "answer");
  assert.equal(calls, 2);
  assert.ok(ms >= 25 && ms < 1000, `took ${ms} ms`);
});

test("probe calls that never settle end in the timeout's message, not a hang", BOUNDED, async () => {
  const { error, ms } = await rejection(() => until("an answer", () => new Promise<string>(() => {}), { timeoutMs: 60, probeTimeoutMs: 20 }));
  assert.match(error.message, /^timed out after 60 ms: an answer\nlast probe error: Error: a probe call had not settled after 20 ms$/);
  assert.ok(ms >= 59 && ms < 1000, `failed after ${ms} ms`);
});

test("a probe call near the deadline gets the time left, not the whole probeTimeoutMs", BOUNDED, async () => {
  const { error, ms } = await rejection(() => until("an answer", () => new Promise<string>(() => {}), { timeoutMs: 100, probeTimeoutMs: 60_000 }));
  assert.match(error.message, /^timed out after 100 ms: an answer\nlast probe error: Error: a probe call had not settled after 1000 ms$/);
  assert.ok(ms >= 990 && ms < 5000, `failed after ${ms} ms, not 60 s`);
});

test("no timer of the wait is left once it ends, however it ends", BOUNDED, async () => {
  const before = timeouts();
  await until("ready", async () => "yes", { timeoutMs: 60_000, everyMs: 60_000, probeTimeoutMs: 60_000 });
  assert.equal(timeouts(), before, "after a value");

  const failing = delay(10).then(() => Promise.reject(new Error("died")));
  await rejection(() => until("never", () => new Promise<string>(() => {}), { timeoutMs: 60_000, probeTimeoutMs: 60_000, failing }));
  assert.equal(timeouts(), before, "after a failing promise ended it while a probe call was pending");

  await rejection(() => until("never", () => undefined, { timeoutMs: 20, everyMs: 60_000 }));
  assert.equal(timeouts(), before, "after the timeout");
});
