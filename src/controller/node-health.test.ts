import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentWorld, NODE } from "../agent/test-support.ts";
import type { PithNode } from "../model/kinds.ts";
import { StoreError } from "../store/store.ts";
import { NODE_STALE_MS } from "./scheduler.ts";
import { ChangeLog, ControllerWorld } from "./test-support.ts";

/** A reconcile that lost a race with a heartbeat is simply run again, as the runner does. */
async function checkNodesUntilWritten(world: ControllerWorld): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return void (await world.checkNodes());
    } catch (e) {
      if (!(e instanceof StoreError && e.code === "Conflict") || attempt >= 20) throw e;
    }
  }
}

test("a node is NotReady once its heartbeat is older than the timeout, and said so once", async (t) => {
  const world = ControllerWorld.create(t);
  await world.node("quiet", { memoryMiB: 1024, vcpus: 1 });
  await world.node("chatty", { memoryMiB: 1024, vcpus: 1 });
  const ready = async (name: string) => (await world.store.get<PithNode>("Node", name))?.status.ready;

  world.clock.advance(NODE_STALE_MS - 1);
  await world.checkNodes();
  assert.equal(await ready("quiet"), true, "not yet past the timeout");
  // chatty's agent reports now, as its heartbeat does.
  const chatty = (await world.store.get<PithNode>("Node", "chatty"))!;
  await world.store.update<PithNode>({ ...chatty, status: { ...chatty.status, heartbeatAt: world.clock.iso() } });

  world.clock.advance(1);
  await world.checkNodes();
  assert.equal(await ready("quiet"), false);
  assert.equal(await ready("chatty"), true);
  await world.checkNodes();
  assert.deepEqual((await world.events("NodeNotReady")).map((e) => e.spec.involved.name), ["quiet"]);
});

test("a NotReady node is Ready again on its agent's next heartbeat", async (t) => {
  const agents = await AgentWorld.start(t);
  const nodes = await ChangeLog.start<PithNode>(t, agents.server.store, "Node");
  await agents.startAgent({ heartbeatMs: 50 });
  const world = ControllerWorld.create(t, agents.server.store);

  // Seen from a clock past the timeout, the agent has been silent too long.
  world.clock.ms = Date.now() + NODE_STALE_MS;
  await checkNodesUntilWritten(world);
  const notReady = await nodes.until((e, i) => (e.object.status.ready === false ? { at: i, heartbeatAt: e.object.status.heartbeatAt! } : undefined), "the node is NotReady");
  assert.deepEqual((await world.events("NodeNotReady")).map((e) => e.spec.involved.name), [NODE]);

  // Back to real time: the agent's next heartbeat makes the node Ready, and it stays so.
  const back = await nodes.until((e, i) => (i > notReady.at && e.object.status.ready === true ? e.object : undefined), "a heartbeat makes the node Ready again");
  assert.ok(back.status.heartbeatAt! > notReady.heartbeatAt, "with a fresh heartbeat");
  world.clock.ms = Date.now();
  await checkNodesUntilWritten(world);
  assert.equal((await world.store.get<PithNode>("Node", NODE))?.status.ready, true);
  assert.equal((await world.events("NodeNotReady")).length, 1);
  // And the scheduler uses it again.
  await world.placedMachine("m1", { memoryMiB: 16 });
  await world.schedule("m1");
  assert.equal((await world.machine("m1")).spec.node, NODE);
});
