import assert from "node:assert/strict";
import { test } from "node:test";
import { NODE_STALE_MS } from "./scheduler.ts";
import { bootAll, heartbeat, markNotReady, nodesOf, scheduleAll, settle, worldOfNodes } from "./hosts-test-support.ts";

test("a node silent past the timeout is NotReady, and its machines are replaced on the others", async (t) => {
  const world = await worldOfNodes(t, ["a", "b", "c"]);
  const digest = await world.image("x");
  await world.applyService("web", { image: digest, replicas: 3 });
  await settle(world);
  const onC = (await world.machines("web")).find((m) => m.spec.node === "c")!;

  // Node health's clock moves past the timeout while a and b keep reporting.
  world.clock.advance(NODE_STALE_MS + 1);
  for (const name of ["a", "b"]) await heartbeat(world, name);
  await world.checkNodes();
  assert.deepEqual((await world.events("NodeNotReady")).map((e) => e.spec.involved.name), ["c"]);

  await world.reconcileService("web");
  const replacement = (await world.machines("web")).find((m) => m.status.phase === "pending")!;
  assert.ok(replacement, "a replacement is created at once");
  assert.equal((await world.machine(onC.metadata.name)).spec.desiredState, "running", "the lost machine is kept until its replacement is ready");
  // The scheduler judges liveness by the wall clock: keep a and b fresh for it.
  world.clock.ms = Date.now();
  for (const name of ["a", "b"]) await heartbeat(world, name);
  await scheduleAll(world);
  assert.notEqual((await world.machine(replacement.metadata.name)).spec.node, "c");
  await bootAll(world);
  await world.reconcileService("web");
  assert.equal(await world.store.get("Machine", onC.metadata.name), undefined, "the lost machine's object is gone once replaced");
  assert.deepEqual((await world.events("NodeLost")).map((e) => e.spec.involved.name), [onC.metadata.name]);
  const machines = await world.machines("web");
  assert.equal(machines.length, 3);
  assert.ok(machines.every((m) => m.spec.node !== "c" && m.status.phase === "ready"));
  assert.equal((await world.service("web")).status.ready, 3);
});

test("a lost node back before the replacement is ready keeps its machine; the replacement is the excess", async (t) => {
  const world = await worldOfNodes(t, ["a", "b"]);
  const digest = await world.image("x");
  await world.applyService("web", { image: digest, replicas: 2 });
  await settle(world);
  const onB = (await world.machines("web")).find((m) => m.spec.node === "b")!;
  await markNotReady(world, "b");
  await world.reconcileService("web");
  await scheduleAll(world);
  assert.deepEqual(nodesOf(await world.machines("web")), ["a", "a", "b"]);

  // b's agent heartbeats again before a's new machine is ready.
  await heartbeat(world, "b");
  await world.reconcileService("web");
  const machines = (await world.machines("web")).filter((m) => m.spec.desiredState === "running");
  assert.deepEqual(machines.map((m) => m.spec.node).sort(), ["a", "b"]);
  assert.ok(machines.some((m) => m.metadata.name === onB.metadata.name), "b's machine is kept");
});

test("a machine asked to stop on a node that is then lost is forgotten: no agent is there to finish", async (t) => {
  const world = await worldOfNodes(t, ["a", "b"]);
  const digest = await world.image("x");
  await world.applyService("web", { image: digest, replicas: 2 });
  await settle(world);
  await world.applyService("web", { image: digest, replicas: 1 });
  await world.reconcileService("web");
  const stopping = (await world.machines("web")).find((m) => m.spec.desiredState === "stopped")!;
  await world.reconcileService("web");
  assert.ok(await world.store.get("Machine", stopping.metadata.name), "its agent finishes the stop while the node is there");
  await markNotReady(world, stopping.spec.node!);
  await world.reconcileService("web");
  assert.equal(await world.store.get("Machine", stopping.metadata.name), undefined);
});
