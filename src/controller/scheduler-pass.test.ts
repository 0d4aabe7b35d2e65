import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Machine, PithNode } from "../model/kinds.ts";
import { API_VERSION, type ResourceInput } from "../model/resource.ts";
import { SqliteStore } from "../store/sqlite/sqlite-store.ts";
import { AllocationTracker } from "./allocations.ts";
import { EventRecorder } from "./event-recorder.ts";
import { ControllerInformers } from "./informers.ts";
import { PLACEMENT_KEY, Scheduler } from "./scheduler.ts";

async function world(t: { after: (fn: () => Promise<void>) => void }) {
  const dir = await mkdtemp(join(tmpdir(), "pith-scheduler-pass-"));
  const store = SqliteStore.open(join(dir, "state.db"));
  const informers = new ControllerInformers(store);
  t.after(async () => {
    informers.stop();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  await informers.start();
  return { store, informers };
}

const node = (name: string, memoryMiB: number): Parameters<SqliteStore["create"]>[0] => ({
  apiVersion: API_VERSION,
  kind: "Node",
  metadata: { name },
  spec: { capacity: { memoryMiB, vcpus: 64 }, accelerator: "tcg" },
  status: { ready: true, heartbeatAt: new Date().toISOString() } satisfies PithNode["status"],
});

const machine = (name: string, memoryMiB = 1024, node?: string): ResourceInput<"Machine", Machine["spec"], Machine["status"]> => ({
  apiVersion: API_VERSION,
  kind: "Machine",
  metadata: { name },
  spec: { image: "sha256:abc", memoryMiB, vcpus: 1, desiredState: "running", ...(node ? { node } : {}) },
  status: { phase: "pending" },
});

test("one pass places every pending machine, oldest first, each seeing the placements before it", async (t) => {
  const { store, informers } = await world(t);
  const scheduler = new Scheduler(store, new EventRecorder(store), informers);
  await store.create(node("a", 2048));
  await store.create(node("b", 1024));
  for (const name of ["m1", "m2", "m3", "m4"]) await store.create(machine(name));

  const outcome = await scheduler.reconcile(PLACEMENT_KEY);
  const placed = Object.fromEntries(informers.machines.list().map((m) => [m.metadata.name, m.spec.node ?? m.status.reason]));
  // a has the most room, then a and b tie at 1024 (a by name), then only b has room.
  assert.deepEqual(placed, { m1: "a", m2: "a", m3: "b", m4: "no node has 1024 MiB and 1 vCPU free" });
  assert.deepEqual(outcome, { requeueAfterMs: 2000 }, "the one left waits for the next look");

  // A failed machine gives its room back; the next pass uses it.
  const m2 = informers.machines.get("m2")!;
  await store.update({ ...m2, status: { ...m2.status, phase: "failed" } });
  assert.equal(await scheduler.reconcile(PLACEMENT_KEY), undefined);
  assert.equal(informers.machines.get("m4")?.spec.node, "a");
});

test("allocations follow the machine cache: placed, failed, moved and deleted machines", async (t) => {
  const { store, informers } = await world(t);
  const tracker = new AllocationTracker(informers.machines);
  const created = await store.create<Machine>(machine("m1", 512));
  assert.deepEqual(tracker.of("a"), { memoryMiB: 0, vcpus: 0, machines: 0 }, "unplaced claims nothing");
  const placed = await store.update<Machine>({ ...created, spec: { ...created.spec, node: "a" } });
  await store.create<Machine>(machine("m2", 256, "a"));
  assert.deepEqual(tracker.of("a"), { memoryMiB: 768, vcpus: 2, machines: 2 });
  const failed = await store.update<Machine>({ ...placed, status: { phase: "failed" } });
  assert.deepEqual(tracker.of("a"), { memoryMiB: 256, vcpus: 1, machines: 1 });
  await store.update<Machine>({ ...failed, spec: { ...failed.spec, node: "b" }, status: { phase: "booting" } });
  assert.deepEqual(tracker.of("b"), { memoryMiB: 512, vcpus: 1, machines: 1 });
  await store.delete("Machine", "m2");
  await store.delete("Machine", "m1");
  assert.deepEqual([tracker.of("a"), tracker.of("b")], [{ memoryMiB: 0, vcpus: 0, machines: 0 }, { memoryMiB: 0, vcpus: 0, machines: 0 }]);
});
