import assert from "node:assert/strict";
import { test } from "node:test";
import { nodesOf, scheduleAll, setNodeSpec, settle, worldOfNodes } from "./hosts-test-support.ts";

test("a service's machines are spread one per node while another node has room", async (t) => {
  // b has by far the most memory: most-free-memory alone would put every machine there.
  const world = await worldOfNodes(t, ["a", "c"]);
  await world.node("b", { memoryMiB: 65_536, vcpus: 64 });
  const digest = await world.image("x", { memoryMiB: 256 });
  await world.applyService("web", { image: digest, replicas: 3 });
  await settle(world);
  assert.deepEqual(nodesOf(await world.machines("web")), ["a", "b", "c"]);

  // A fourth goes where the most memory is free, since every node has one already.
  await world.applyService("web", { image: digest, replicas: 4 });
  await settle(world);
  assert.deepEqual(nodesOf(await world.machines("web")), ["a", "b", "b", "c"]);

  // Another service spreads on its own: b holds two of web's, none of api's.
  await world.applyService("api", { image: digest, replicas: 3 });
  await settle(world, "api");
  assert.deepEqual(nodesOf(await world.machines("api")), ["a", "b", "c"]);
});

test("spread never overrides capacity: a full node gets none, the others take two", async (t) => {
  const world = await worldOfNodes(t, ["a", "b"]);
  await world.node("tiny", { memoryMiB: 100, vcpus: 8 });
  const digest = await world.image("x", { memoryMiB: 256 });
  await world.applyService("web", { image: digest, replicas: 4 });
  await settle(world);
  assert.deepEqual(nodesOf(await world.machines("web")), ["a", "a", "b", "b"]);
});

test("a cordoned node gets no new machine, keeps its own, and is used again once uncordoned", async (t) => {
  const world = await worldOfNodes(t, ["a", "b"]);
  const digest = await world.image("x");
  await world.applyService("web", { image: digest, replicas: 2 });
  await settle(world);
  assert.deepEqual(nodesOf(await world.machines("web")), ["a", "b"]);

  await setNodeSpec(world, "a", { unschedulable: true });
  await world.applyService("web", { image: digest, replicas: 4 });
  await settle(world);
  assert.deepEqual(nodesOf(await world.machines("web")), ["a", "b", "b", "b"], "a keeps its machine; new ones go to b");

  await setNodeSpec(world, "b", { unschedulable: true });
  await world.applyService("web", { image: digest, replicas: 5 });
  await world.reconcileService("web");
  await scheduleAll(world);
  const waiting = (await world.machines("web")).filter((m) => !m.spec.node);
  assert.equal(waiting.length, 1);
  assert.equal(waiting[0]!.status.reason, "every live node is cordoned or draining");

  await setNodeSpec(world, "a", { unschedulable: false });
  await scheduleAll(world);
  assert.deepEqual(nodesOf(await world.machines("web")), ["a", "a", "b", "b", "b"]);
});

test("a machine in snapshot mode goes where a warm machine of its service waits, one per warm machine, spread first", async (t) => {
  const world = await worldOfNodes(t, ["a"]);
  // b has more memory free, but c holds web's warm machine (and one of another service's).
  await world.node("b", { memoryMiB: 65_536, vcpus: 64 });
  await world.node("c", { memoryMiB: 4096, vcpus: 8 }, { warm: { web: 1, api: 3 } });
  const digest = await world.image("x", { memoryMiB: 256 });
  await world.applyService("web", { image: digest, replicas: 1, startMode: "snapshot", warm: 1 });
  await settle(world);
  assert.deepEqual(nodesOf(await world.machines("web")), ["c"], "the warm machine's node");

  // Two more in one pass: spread still comes first (c has one), then memory; c's warm one is taken.
  await world.applyService("web", { image: digest, replicas: 3, startMode: "snapshot", warm: 1 });
  await settle(world);
  assert.deepEqual(nodesOf(await world.machines("web")), ["a", "b", "c"]);

  // A service that boots takes no warm machine: memory decides, as before.
  await world.applyService("api", { image: digest, replicas: 1 });
  await settle(world, "api");
  assert.deepEqual(nodesOf(await world.machines("api")), ["b"]);
});

test("one pass places no more machines on a node for its warm machines than it holds", async (t) => {
  const world = await worldOfNodes(t, []);
  await world.node("big", { memoryMiB: 65_536, vcpus: 64 });
  await world.node("warm", { memoryMiB: 4096, vcpus: 8 }, { warm: { web: 1 } });
  const digest = await world.image("x", { memoryMiB: 256 });
  // Three at once: the warm node's one warm machine, then big (spread), then a tie of one each:
  // the warm machine is taken by then, so memory decides.
  await world.applyService("web", { image: digest, replicas: 3, startMode: "snapshot", warm: 1 });
  await world.reconcileService("web");
  await scheduleAll(world);
  assert.deepEqual(nodesOf(await world.machines("web")), ["big", "big", "warm"]);
});

test("warm machines' memory is taken on their node: only a machine that takes one over fits in it", async (t) => {
  const world = await worldOfNodes(t, []);
  // All of the node's memory is held by warm machines: web's one and api's three, 256 MiB each.
  await world.node("full", { memoryMiB: 1024, vcpus: 8 }, { warm: { web: 1, api: 3 }, warmMemoryMiB: 1024 });
  const digest = await world.image("x", { memoryMiB: 256 });
  await world.applyService("db", { image: digest, replicas: 1 });
  await world.reconcileService("db");
  await scheduleAll(world);
  const [db] = await world.machines("db");
  assert.equal(db!.spec.node, undefined, "a booting machine has no room beside the warm ones");
  assert.match(db!.status.reason ?? "", /no node has 256 MiB/);

  // Two of web at once: the first takes over web's warm machine and its memory; the second finds none left.
  await world.applyService("web", { image: digest, replicas: 2, startMode: "snapshot", warm: 1 });
  await world.reconcileService("web");
  await scheduleAll(world);
  assert.deepEqual(nodesOf(await world.machines("web")), ["-", "full"]);
});
