import assert from "node:assert/strict";
import { test } from "node:test";
import { NODE_STALE_MS } from "./scheduler.ts";
import { ControllerWorld } from "./test-support.ts";

// The scheduler judges heartbeats by the wall clock: nodes here are registered relative to it.
const worldAtWallClock = (t: Parameters<typeof ControllerWorld.create>[0]) => {
  const world = ControllerWorld.create(t);
  world.clock.ms = Date.now();
  return world;
};

test("places a machine on the live node with the most free memory, counting what is placed there", async (t) => {
  const world = worldAtWallClock(t);
  await world.node("small", { memoryMiB: 4096, vcpus: 8 });
  await world.node("big", { memoryMiB: 8192, vcpus: 8 });
  // Biggest of all, but not ready, or silent for too long: never used.
  await world.node("not-ready", { memoryMiB: 65_536, vcpus: 64 }, { ready: false });
  await world.node("silent", { memoryMiB: 65_536, vcpus: 64 }, { heartbeatAgoMs: NODE_STALE_MS + 1000 });

  await world.placedMachine("m1", { memoryMiB: 1024 });
  await world.schedule("m1");
  const m1 = await world.machine("m1");
  assert.equal(m1.spec.node, "big");
  assert.equal(m1.status.node, "big");
  assert.deepEqual((await world.events("Scheduled")).map((e) => e.spec.message), ["placed on big"]);

  // big now has 7168 MiB free, small 4096: big again; then a 4096 MiB one leaves big at 3072.
  await world.placedMachine("m2", { memoryMiB: 4096 });
  await world.schedule("m2");
  assert.equal((await world.machine("m2")).spec.node, "big");
  await world.placedMachine("m3", { memoryMiB: 512 });
  await world.schedule("m3");
  assert.equal((await world.machine("m3")).spec.node, "small", "small has more free memory now");

  // Failed and stopped machines hold nothing.
  await world.report("m2", "failed");
  await world.placedMachine("m4", { memoryMiB: 512 });
  await world.schedule("m4");
  assert.equal((await world.machine("m4")).spec.node, "big");
});

test("respects memory and vCPU capacity", async (t) => {
  const world = worldAtWallClock(t);
  await world.node("roomy", { memoryMiB: 8192, vcpus: 1 });
  await world.node("tight", { memoryMiB: 2048, vcpus: 4 });
  await world.placedMachine("two-cpus", { memoryMiB: 256, vcpus: 2 });
  await world.schedule("two-cpus");
  assert.equal((await world.machine("two-cpus")).spec.node, "tight", "roomy has the memory but not the vCPUs");
  await world.placedMachine("exact", { memoryMiB: 1792, vcpus: 2 });
  await world.schedule("exact");
  assert.equal((await world.machine("exact")).spec.node, "tight", "a machine that fills a node exactly fits");
  await world.placedMachine("too-big", { memoryMiB: 8193, vcpus: 1 });
  await world.schedule("too-big");
  assert.equal((await world.machine("too-big")).spec.node, undefined);
});

test("a machine that fits nowhere stays pending, with the reason in its status and a FailedScheduling event", async (t) => {
  const world = worldAtWallClock(t);
  await world.placedMachine("early", { memoryMiB: 512 });
  const outcome = await world.schedule("early");
  let early = await world.machine("early");
  assert.equal(early.spec.node, undefined);
  assert.equal(early.status.phase, "pending");
  assert.equal(early.status.reason, "no live node");
  assert.ok(outcome?.requeueAfterMs !== undefined, "looks again later");

  await world.node("down", { memoryMiB: 4096, vcpus: 4 }, { ready: false });
  await world.node("full", { memoryMiB: 1024, vcpus: 4 });
  await world.placedMachine("hog", { memoryMiB: 1000, node: "full", phase: "ready" });
  await world.placedMachine("late", { memoryMiB: 512 });
  await world.schedule("late");
  const late = await world.machine("late");
  assert.equal(late.spec.node, undefined, "never on a NotReady node, even when it is the only one with room");
  assert.equal(late.status.reason, "no node has 512 MiB and 1 vCPU free");
  // Said once per reason, not on every retry.
  await world.schedule("late");
  assert.deepEqual((await world.events("FailedScheduling")).map((e) => `${e.spec.involved.name}: ${e.spec.message}`), ["early: no live node", "late: no node has 512 MiB and 1 vCPU free"]);

  // Room appears: the machine is placed and the reason cleared.
  await world.node("fresh", { memoryMiB: 2048, vcpus: 2 });
  await world.schedule("early");
  early = await world.machine("early");
  assert.equal(early.spec.node, "fresh");
  assert.equal(early.status.reason, undefined);
});
