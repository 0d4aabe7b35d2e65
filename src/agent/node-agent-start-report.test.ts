import assert from "node:assert/strict";
import { test } from "node:test";
import { fakeBootSource } from "../hypervisor/fake/fake-boot-source.ts";
import { AgentWorld, GUEST_PORT } from "./test-support.ts";

/** The status writes a machine got, in order (the test's ChangeLog sees every store write). */
const bootingWrites = (world: AgentWorld, name: string) =>
  world.machines.events.filter((e) => e.type !== "DELETED" && e.object.metadata.name === name && e.object.status.phase === "booting").map((e) => e.object.status);

test("a quick start is reported once, with its pid: no booting write before it", async (t) => {
  const world = await AgentWorld.start(t);
  await world.startAgent();
  await world.place("quick");
  await world.reaches("quick", "ready");
  const booting = bootingWrites(world, "quick");
  assert.equal(booting.length, 1, `one booting write, got ${JSON.stringify(booting)}`);
  assert.equal(typeof booting[0]!.pid, "number", "the one booting write carries the pid");
  assert.ok(booting[0]!.startedAt, "and when the start began");
});

test("a slow start says booting (no pid yet) while it lasts, then reports its pid", async (t) => {
  const world = await AgentWorld.start(t);
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const source = fakeBootSource("app", [GUEST_PORT]);
  // The boot source waits until the early booting write has been seen: the start is slow for
  // exactly as long as the test needs, whatever the host's speed.
  await world.startAgent({ bootSource: async (digest) => (await released, source(digest)) });
  await world.place("slow");
  const early = await world.reaches("slow", "booting", 10_000);
  assert.equal(early.status.pid, undefined, "said booting before it had a pid");
  release();
  const ready = await world.reaches("slow", "ready");
  const booting = bootingWrites(world, "slow");
  assert.equal(booting.length, 2, `booting without, then with a pid: ${JSON.stringify(booting)}`);
  assert.equal(typeof booting[1]!.pid, "number");
  assert.equal(booting[1]!.startedAt, booting[0]!.startedAt, "one start, one start time");
  assert.equal(ready.status.startedAt, booting[0]!.startedAt);
});
