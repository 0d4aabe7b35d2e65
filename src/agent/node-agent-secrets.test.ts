import assert from "node:assert/strict";
import { test } from "node:test";
import type { Machine as RunningMachine, MachineSpec } from "../hypervisor/hypervisor.ts";
import { API_VERSION } from "../model/resource.ts";
import { PithClient } from "../client/index.ts";
import { AgentWorld, CountingHypervisor, NODE } from "./test-support.ts";

/** Remembers each start's spec, as the driver gets it. */
class RecordingHypervisor extends CountingHypervisor {
  readonly specs = new Map<string, MachineSpec>();
  override start(spec: MachineSpec): Promise<RunningMachine> {
    this.specs.set(spec.id, spec);
    return super.start(spec);
  }
}

test("the agent opens a machine's Secret values with its node token and hands them to the hypervisor only", async (t) => {
  const world = await AgentWorld.start(t);
  await world.client.create({ apiVersion: API_VERSION, kind: "Secret", metadata: { name: "db" }, spec: { stringData: { password: "agent-test-value" } }, status: {} });
  const hypervisor = new RecordingHypervisor({ bootMs: 20 });
  const { secret } = await world.client.createToken({ role: "node", node: NODE });
  const logs: string[] = [];
  await world.startAgent({ client: new PithClient({ server: world.server.url, token: secret }), hypervisor, log: (m) => logs.push(m) });

  const create = (name: string, key: string) =>
    world.client.create({
      apiVersion: API_VERSION,
      kind: "Machine",
      metadata: { name },
      spec: { image: "sha256:" + "f".repeat(64), node: NODE, memoryMiB: 16, vcpus: 1, env: { PLAIN: "p" }, secretEnv: { DB_PASSWORD: { name: "db", key } }, desiredState: "running" },
      status: { phase: "pending" },
    });
  await create("with-secret", "password");
  await world.reaches("with-secret", "ready");
  const spec = hypervisor.specs.get("with-secret")!;
  assert.deepEqual(spec.env, { PLAIN: "p", DB_PASSWORD: "agent-test-value" });
  assert.match(spec.secretHashes?.DB_PASSWORD ?? "", /^hmac-sha256:/);
  const stored = await world.client.get("Machine", "with-secret");
  assert.ok(!JSON.stringify(stored).includes("agent-test-value"), "the Machine object never holds the value");
  assert.ok(!logs.join("\n").includes("agent-test-value"), "nor the agent's log");

  // A key that does not exist fails that machine with a reason naming it; the agent carries on.
  await create("missing-key", "nope");
  const failed = await world.reaches("missing-key", "failed");
  assert.match(failed.status.reason ?? "", /cannot start: .*key nope of Secret db, which has no such key/);
  assert.equal(hypervisor.specs.has("missing-key"), false, "nothing was started without its env");
});
