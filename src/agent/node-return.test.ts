import assert from "node:assert/strict";
import { test } from "node:test";
import { heartbeat } from "../controller/hosts-test-support.ts";
import { NODE_STALE_MS } from "../controller/scheduler.ts";
import { ControllerWorld } from "../controller/test-support.ts";
import type { Machine, PithNode } from "../model/kinds.ts";
import { writeBack } from "../controller/object-updates.ts";
import { AgentWorld, exitOf, NODE } from "./test-support.ts";

test("a node back after being lost stops the machines that were replaced and re-adopts the others", async (t) => {
  const agents = await AgentWorld.start(t);
  const world = ControllerWorld.create(t, agents.server.store);
  const first = await agents.startAgent();
  await world.node("b", { memoryMiB: 4096, vcpus: 8 });
  const digest = await world.image("x");

  // web has one machine on n1 (the agent's) and one on b (the test plays b's agent).
  await world.applyService("web", { image: digest, replicas: 2 });
  await world.reconcileService("web");
  const [onN1, onB] = (await world.machines("web")).map((m) => m.metadata.name) as [string, string];
  await writeBack(world.store, await world.machine(onN1), { spec: { ...(await world.machine(onN1)).spec, node: NODE } });
  await writeBack(world.store, await world.machine(onB), { spec: { ...(await world.machine(onB)).spec, node: "b" } });
  await world.report(onB, "ready");
  // And a machine of no service on n1: nothing can replace it, so it must survive.
  await agents.place("solo");
  const replacedBefore = await agents.reaches(onN1, "ready");
  const soloBefore = await agents.reaches("solo", "ready");
  const replacedVm = await agents.hypervisor.running(onN1);

  // n1's agent goes silent (its machines keep running); node health's clock passes the timeout.
  first.stop();
  world.clock.ms = Date.now() + NODE_STALE_MS + 1;
  await heartbeat(world, "b");
  await world.checkNodes();
  assert.equal((await world.store.get<PithNode>("Node", NODE))?.status.ready, false);
  assert.equal((await world.store.get<PithNode>("Node", "b"))?.status.ready, true);

  // The controller replaces n1's web machine on b; once the replacement is ready, the lost one goes.
  await world.reconcileService("web");
  const replacement = (await world.machines("web")).find((m) => m.status.phase === "pending")!;
  await writeBack(world.store, replacement, { spec: { ...replacement.spec, node: "b" } });
  await world.report(replacement.metadata.name, "ready");
  await world.reconcileService("web");
  assert.equal(await world.store.get<Machine>("Machine", onN1), undefined, "the replaced machine's object is gone");
  assert.ok(await world.store.get<Machine>("Machine", "solo"), "solo is left alone");
  assert.equal(replacedVm.exit, undefined, "nothing could stop it while its node was away");

  // n1's agent is back: it stops the replaced machine and carries on with solo, the same process.
  const stopped = exitOf(replacedVm);
  await agents.startAgent();
  await stopped;
  const solo = await agents.hypervisor.running("solo");
  assert.equal(solo.pid, soloBefore.status.pid, "solo is re-adopted, not restarted");
  assert.equal(replacedBefore.status.pid, replacedVm.pid);
  assert.deepEqual(agents.hypervisor.starts.sort(), [onN1, "solo"].sort(), "nothing started twice");
  assert.equal((await world.store.get<PithNode>("Node", NODE))?.status.ready, true, "the node is Ready again");
  assert.ok(!agents.phases("solo").includes("failed"));
  assert.deepEqual((await world.machines("web")).map((m) => m.spec.node).sort(), ["b", "b"], "web serves from b alone: no duplicate");
});
