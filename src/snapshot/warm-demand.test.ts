import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentWorld, NODE } from "../agent/test-support.ts";
import type { FakeMachine } from "../hypervisor/fake/fake-hypervisor.ts";
import { API_VERSION } from "../model/resource.ts";
import { WARM_MACHINE_PREFIX } from "./warm-pool.ts";
import { type Probe, until as within } from "../../test/support/until.ts";

const DIGEST_A = `sha256:${"a".repeat(64)}`;
const DIGEST_B = `sha256:${"b".repeat(64)}`;

/** The node agent and its warm pools on the fake hypervisor, with a real API (no controllers: the test writes what they would). */
async function world(t: Parameters<typeof AgentWorld.start>[0]): Promise<AgentWorld> {
  const w = await AgentWorld.start(t);
  await w.startAgent({ heartbeatMs: 50 });
  return w;
}

async function service(w: AgentWorld, spec: { warm?: number; env?: Record<string, string> }, digest = DIGEST_A): Promise<void> {
  const existing = await w.client.get("Service", "web");
  const full = { image: digest, replicas: 0, startMode: "snapshot" as const, ...spec };
  if (existing) {
    const { labels, resourceVersion } = existing.metadata;
    await w.client.update({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "web", labels, resourceVersion }, spec: full, status: existing.status });
  } else {
    await w.client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "web" }, spec: full });
  }
  await w.client.updateStatus("Service", "web", { imageDigest: digest });
}

const pooled = (w: AgentWorld): FakeMachine[] => w.hypervisor.machinesRunning().filter((m) => m.paused);

/** The agent's loops run on the fake hypervisor's timers: 10 s is ample for any of them. */
const until = <T>(what: string, probe: Probe<T>): Promise<T> => within(what, probe, { timeoutMs: 10_000 });

test("the agent keeps a service's warm machines paused, with no Machine object, and says how many on its Node", async (t) => {
  const w = await world(t);
  await service(w, { warm: 2 });
  await until("two paused warm machines", () => pooled(w).length === 2);
  for (const m of pooled(w)) assert.ok(m.id.startsWith(WARM_MACHINE_PREFIX));
  const objects = (await w.client.list("Machine")).items;
  assert.deepEqual(objects, [], "a warm machine has no object, so nothing routes to it");
  await until("the node reports them", async () => (await w.client.get("Node", NODE))?.status.warm?.web === 2);
});

test("a machine of the service takes a warm one (no start of its own), is ready with its own id, and the pool refills", async (t) => {
  const w = await world(t);
  await service(w, { warm: 1, env: { GREETING: "hi" } });
  const [warm] = await until("a warm machine", () => (pooled(w).length === 1 ? pooled(w) : undefined));
  const startsBefore = w.hypervisor.starts.length;
  await w.client.create({
    apiVersion: API_VERSION,
    kind: "Machine",
    metadata: { name: "web-1a2b3c", labels: { "pith.dev/service": "web" } },
    spec: { service: "web", image: DIGEST_A, node: NODE, memoryMiB: 16, vcpus: 1, env: { GREETING: "hi" }, startMode: "snapshot", desiredState: "running" },
    status: { phase: "pending" },
  });
  const ready = await w.reaches("web-1a2b3c", "ready");
  assert.equal(ready.status.pid, warm!.pid, "the warm machine's process is the machine");
  assert.equal(warm!.id, "web-1a2b3c");
  assert.deepEqual(warm!.identities.at(-1), { id: "web-1a2b3c", env: { GREETING: "hi" } });
  assert.ok(!w.hypervisor.starts.slice(startsBefore).includes("web-1a2b3c"), "it was not started or restored itself");
  const reasons = (await w.client.events("Machine", "web-1a2b3c")).map((e) => e.spec.reason);
  assert.ok(reasons.includes("WarmMachineClaimed"), `events: ${reasons.join(", ")}`);
  await until("the pool refilled", () => pooled(w).length === 1 && pooled(w)[0] !== warm);
});

test("a new image or env discards the pool; warm 0 or a deleted service drains it", async (t) => {
  const w = await world(t);
  await service(w, { warm: 1 });
  const [first] = await until("a warm machine", () => (pooled(w).length === 1 ? pooled(w) : undefined));
  await service(w, { warm: 1 }, DIGEST_B);
  await until("the old one stopped", () => first!.exit !== undefined);
  const [second] = await until("one of the new image", () => (pooled(w).length === 1 && pooled(w)[0] !== first ? pooled(w) : undefined));
  await service(w, { warm: 1, env: { GREETING: "changed" } }, DIGEST_B);
  await until("discarded on an env change", () => second!.exit !== undefined);
  await until("refilled", () => pooled(w).length === 1);
  await service(w, { warm: 0 }, DIGEST_B);
  await until("drained by warm 0", () => pooled(w).length === 0);
  await service(w, { warm: 2 }, DIGEST_B);
  await until("filled again", () => pooled(w).length === 2);
  await w.client.delete("Service", "web");
  await until("drained by the deletion", () => pooled(w).length === 0);
});

test("after an agent restart, a claimed warm machine is re-adopted under its Machine's name; the old pool is not left running", async (t) => {
  const w = await AgentWorld.start(t);
  const first = await w.startAgent({ heartbeatMs: 50 });
  await service(w, { warm: 2 });
  const [warm] = await until("two warm machines", () => (pooled(w).length === 2 ? pooled(w) : undefined));
  await w.client.create({
    apiVersion: API_VERSION,
    kind: "Machine",
    metadata: { name: "web-9f8e7d", labels: { "pith.dev/service": "web" } },
    spec: { service: "web", image: DIGEST_A, node: NODE, memoryMiB: 16, vcpus: 1, env: {}, startMode: "snapshot", desiredState: "running" },
    status: { phase: "pending" },
  });
  await w.reaches("web-9f8e7d", "ready");
  const claimed = w.hypervisor.machinesRunning().find((m) => m.id === "web-9f8e7d")!;
  assert.ok(claimed === warm || pooled(w).length >= 1);
  await until("the pool refilled", () => pooled(w).length === 2);
  const oldPool = pooled(w);
  first.stop();
  await until("the stopped agent's pool machines are gone", () => oldPool.every((m) => m.exit !== undefined));

  await w.startAgent({ heartbeatMs: 50 });
  await until("the new agent's pool", () => pooled(w).length === 2);
  assert.equal(claimed.exit, undefined, "the claimed machine kept running: it was known by its Machine's name");
  assert.equal((await w.client.get("Machine", "web-9f8e7d"))?.status.phase, "ready");
  await w.retire("web-9f8e7d");
  await w.deleted("web-9f8e7d");
  assert.notEqual(claimed.exit, undefined, "the new agent stopped it when it was retired");
});

test("warm machines fill only into memory no placed machine claims, and the Node says what they hold", async (t) => {
  const w = await AgentWorld.start(t);
  // 40 MiB: a placed 16 MiB machine leaves room for one 16 MiB warm machine, not two.
  await w.startAgent({ heartbeatMs: 50, capacity: { memoryMiB: 40, vcpus: 8 } });
  await w.place("db-1");
  await w.reaches("db-1", "ready");
  await service(w, { warm: 2 });
  await until("the node reports one warm machine holding 16 MiB", async () => {
    const node = await w.client.get("Node", NODE);
    return node?.status.warm?.web === 1 && node.status.warmMemoryMiB === 16;
  });
  assert.equal(pooled(w).length, 1, "the second warm machine would overcommit the host");

  // The placed machine stops: its room goes to the pool at the next beat.
  await w.retire("db-1");
  await until("a second warm machine", () => pooled(w).length === 2);
  await until("the node reports both, 32 MiB", async () => (await w.client.get("Node", NODE))?.status.warmMemoryMiB === 32);
});
