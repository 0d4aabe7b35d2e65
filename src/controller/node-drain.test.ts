import assert from "node:assert/strict";
import { test } from "node:test";
import { nodesOf, scheduleAll, setNodeSpec, settle, wanted, worldOfNodes } from "./hosts-test-support.ts";

test("drain: a node's machines are replaced elsewhere, and each is stopped only once its replacement is ready", async (t) => {
  const world = await worldOfNodes(t, ["a", "b", "c"]);
  const digest = await world.image("x");
  await world.applyService("web", { image: digest, replicas: 3 });
  await settle(world);
  const onA = (await world.machines("web")).find((m) => m.spec.node === "a")!;

  await setNodeSpec(world, "a", { unschedulable: true, drain: true });
  await world.reconcileService("web");
  await scheduleAll(world);
  let machines = await world.machines("web");
  const replacement = machines.find((m) => m.metadata.name !== onA.metadata.name && m.status.phase === "pending")!;
  assert.ok(replacement, "a replacement is created");
  assert.notEqual(replacement.spec.node, "a", "never on the draining node");
  assert.equal(machines.find((m) => m.metadata.name === onA.metadata.name)!.spec.desiredState, "running", "the old one serves while its replacement boots");

  // Booting is not enough; looking again changes nothing until it is ready.
  await world.report(replacement.metadata.name, "booting");
  await world.reconcileService("web");
  assert.equal((await world.machine(onA.metadata.name)).spec.desiredState, "running");
  assert.equal((await world.service("web")).status.ready, 2, "the draining node's machine is not counted as the service's");

  await world.report(replacement.metadata.name, "ready");
  await world.reconcileService("web");
  assert.equal((await world.machine(onA.metadata.name)).spec.desiredState, "stopped", "stopped once the replacement is ready");
  assert.deepEqual((await world.events("NodeDrained")).map((e) => e.spec.involved.name), [onA.metadata.name]);
  await world.finishStops();
  machines = await world.machines("web");
  assert.equal(nodesOf(machines).length, 3);
  assert.ok(wanted(machines).every((m) => m.spec.node !== "a" && m.status.phase === "ready"), "three ready machines, none on a");
  assert.equal((await world.service("web")).status.ready, 3);
});

test("drain with no room elsewhere keeps the machines serving where they are", async (t) => {
  const world = await worldOfNodes(t, ["a"]);
  await world.node("small", { memoryMiB: 32, vcpus: 8 });
  const digest = await world.image("x", { memoryMiB: 64 });
  await world.applyService("web", { image: digest, replicas: 2 });
  await settle(world);
  await setNodeSpec(world, "a", { unschedulable: true, drain: true });
  await settle(world);
  const machines = await world.machines("web");
  assert.deepEqual(machines.filter((m) => m.spec.node === "a").map((m) => [m.spec.desiredState, m.status.phase]), [["running", "ready"], ["running", "ready"]]);
  assert.equal(machines.filter((m) => !m.spec.node).length, 2, "their replacements wait for a node");

  // Uncordoned and no longer draining: the replacements are the excess and go, the originals stay.
  await setNodeSpec(world, "a", { unschedulable: false, drain: false });
  await world.reconcileService("web");
  const after = wanted(await world.machines("web"));
  assert.deepEqual(after.map((m) => m.spec.node), ["a", "a"]);
});
