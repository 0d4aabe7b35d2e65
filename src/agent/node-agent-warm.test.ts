import assert from "node:assert/strict";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fakeBootSource } from "../hypervisor/fake/fake-boot-source.ts";
import type { FakeMachine } from "../hypervisor/fake/fake-hypervisor.ts";
import type { BootTimings } from "../hypervisor/hypervisor.ts";
import { API_VERSION } from "../model/resource.ts";
import { pithHome } from "../shared/paths.ts";
import { MachineStarter } from "../snapshot/machine-starter.ts";
import { SnapshotStore } from "../snapshot/snapshot-store.ts";
import { WARM_MACHINE_PREFIX, WarmPool } from "../snapshot/warm-pool.ts";
import { AgentWorld, GUEST_PORT, NODE } from "./test-support.ts";

const DIGEST = `sha256:${"e".repeat(64)}`;
const ENV = { GREETING: "hi" };

/** An agent whose pool "web" holds one paused machine of DIGEST; counts the boot-source lookups the agent makes. */
async function worldWithWarmMachine(t: TestContext): Promise<{ world: AgentWorld; pool: WarmPool; lookups: string[]; warm: FakeMachine }> {
  const world = await AgentWorld.start(t);
  const source = fakeBootSource("web", [GUEST_PORT]);
  const dir = join(pithHome(), "warm-test");
  const starter = new MachineStarter({ hypervisor: world.hypervisor, store: new SnapshotStore(join(dir, "images")), scratchDir: join(dir, "scratch"), warmUpRequests: 0 });
  const pool = new WarmPool({ hypervisor: world.hypervisor, starter, stateDirFor: (id) => join(dir, id), warmUpRequests: 0 });
  pool.want("web", { spec: { ...(await source(DIGEST)), env: ENV }, count: 1 });
  const lookups: string[] = [];
  await world.startAgent({ warmPool: pool, bootSource: (digest) => (lookups.push(digest), source(digest)) });
  const deadline = performance.now() + 5000;
  while ((pool.counts().web ?? 0) < 1) {
    if (performance.now() > deadline) assert.fail("the pool did not fill within 5 s");
    await sleep(2);
  }
  const warm = world.hypervisor.machinesRunning().find((m) => m.id.startsWith(WARM_MACHINE_PREFIX));
  assert.ok(warm, "a paused pool machine");
  return { world, pool, lookups, warm };
}

async function placeServiceMachine(world: AgentWorld, name: string): Promise<void> {
  await world.client.create({
    apiVersion: API_VERSION,
    kind: "Machine",
    metadata: { name },
    spec: { image: DIGEST, node: NODE, memoryMiB: 16, vcpus: 1, desiredState: "running", service: "web", startMode: "snapshot", env: ENV },
    status: { phase: "pending" },
  });
}

test("a machine that takes a warm machine is reported once, ready, and looks up no boot files", async (t) => {
  const { world, lookups, warm } = await worldWithWarmMachine(t);
  await placeServiceMachine(world, "web-1");
  const ready = await world.reaches("web-1", "ready");
  assert.deepEqual(world.phases("web-1"), ["pending", "ready"], "no booting write before ready");
  assert.equal(ready.status.pid, warm.pid, "it is the pool's machine");
  assert.equal(ready.status.startedFrom, "snapshot");
  assert.deepEqual(ready.status.addresses, warm.ports);
  assert.ok(ready.status.readyAt && ready.status.startedAt, "when it started and when it was ready");
  assert.equal(warm.id, "web-1", "claimed with the machine's identity");
  assert.deepEqual(lookups, [], "the pool machine has its boot files: the claim needs none");
  assert.ok(!world.hypervisor.starts.includes("web-1"), "nothing was started for it");
});

test("a claimed machine not ready within the quick window says booting with its pid first, then ready", async (t) => {
  const { world, warm } = await worldWithWarmMachine(t);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  // Its guest takes its time after the claim: ready only once the test has seen the booting write.
  const claim = warm.claim.bind(warm);
  warm.claim = async (identity) => {
    await claim(identity);
    const readyAfterGate: Promise<BootTimings> = gate.then(() => ({ readyMs: 1 }));
    warm.whenReady = () => readyAfterGate;
  };
  await placeServiceMachine(world, "web-2");
  const booting = await world.reaches("web-2", "booting", 10_000);
  assert.equal(booting.status.pid, warm.pid, "booting, with the pool machine's pid");
  release();
  await world.reaches("web-2", "ready");
  assert.deepEqual(world.phases("web-2"), ["pending", "booting", "ready"]);
});

test("a machine of another image than the pool's starts as usual and leaves the warm machine paused", async (t) => {
  const { world, lookups, warm, pool } = await worldWithWarmMachine(t);
  await world.client.create({
    apiVersion: API_VERSION,
    kind: "Machine",
    metadata: { name: "web-3" },
    spec: { image: `sha256:${"d".repeat(64)}`, node: NODE, memoryMiB: 16, vcpus: 1, desiredState: "running", service: "web", startMode: "snapshot", env: ENV },
    status: { phase: "pending" },
  });
  await world.reaches("web-3", "ready");
  assert.ok(lookups.includes(`sha256:${"d".repeat(64)}`), "its own boot files were looked up");
  assert.equal(warm.paused, true, "the pool's machine is untouched");
  assert.equal(pool.counts().web, 1);
});
