import assert from "node:assert/strict";
import { test } from "node:test";
import { PithClient } from "../client/index.ts";
import { AgentWorld, NODE } from "./test-support.ts";

test("an agent registers its address and, restarted, keeps the cordon and drain an admin set", async (t) => {
  const world = await AgentWorld.start(t);
  const { secret } = await world.client.createToken({ role: "node", node: NODE });
  const asNode = () => ({ client: new PithClient({ server: world.server.url, token: secret }), address: "10.213.0.11" });
  const first = await world.startAgent(asNode());
  const registered = (await world.client.get("Node", NODE))!;
  assert.equal(registered.spec.address, "10.213.0.11");

  await world.client.update({ ...registered, metadata: { name: NODE }, spec: { ...registered.spec, unschedulable: true, drain: true } });
  first.stop();
  await world.startAgent(asNode());
  const again = (await world.client.get("Node", NODE))!;
  assert.equal(again.spec.unschedulable, true, "still cordoned");
  assert.equal(again.spec.drain, true, "still draining");
  assert.equal(again.status.ready, true);
});
