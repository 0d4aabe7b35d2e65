import assert from "node:assert/strict";
import { test } from "node:test";
import type { Machine, Volume } from "../model/kinds.ts";
import { API_VERSION } from "../model/resource.ts";
import { scheduleAll, setNodeSpec, worldOfNodes } from "./hosts-test-support.ts";

async function volume(world: Awaited<ReturnType<typeof worldOfNodes>>, name: string, node?: string): Promise<void> {
  await world.store.create<Volume>({ apiVersion: API_VERSION, kind: "Volume", metadata: { name }, spec: { sizeMiB: 64, ...(node ? { node } : {}) }, status: {} });
}

async function machineWith(world: Awaited<ReturnType<typeof worldOfNodes>>, name: string, volumes: string[]): Promise<void> {
  await world.store.create<Machine>({
    apiVersion: API_VERSION,
    kind: "Machine",
    metadata: { name },
    spec: { image: `sha256:${"a".repeat(64)}`, memoryMiB: 64, vcpus: 1, env: {}, desiredState: "running", volumes: volumes.map((v) => ({ name: v, volume: v })) },
    status: { phase: "pending" },
  });
}

const placed = async (world: Awaited<ReturnType<typeof worldOfNodes>>, name: string) => (await world.store.get<Machine>("Machine", name))!;

test("a machine holding a volume runs on the node whose disk has the volume's file, and waits when that node cannot take it", async (t) => {
  // Without the volume, most-free-memory would choose c.
  const world = await worldOfNodes(t, ["a", "b"]);
  await world.node("c", { memoryMiB: 65_536, vcpus: 64 });
  await volume(world, "data-0", "b");
  await machineWith(world, "db-1", ["data-0"]);
  await scheduleAll(world);
  assert.equal((await placed(world, "db-1")).spec.node, "b");

  // Its node cordoned: the replacement waits, saying why, rather than starting without its data.
  await setNodeSpec(world, "b", { unschedulable: true });
  await machineWith(world, "db-2", ["data-0"]);
  await scheduleAll(world);
  const waiting = await placed(world, "db-2");
  assert.equal(waiting.spec.node, undefined);
  assert.match(waiting.status.reason ?? "", /its volume data-0 is on node b/);
});

test("a new volume (no node yet) leaves the choice free; volumes on two nodes are a conflict, said on the machine", async (t) => {
  const world = await worldOfNodes(t, ["a", "b"]);
  await volume(world, "fresh");
  await machineWith(world, "m-1", ["fresh"]);
  await scheduleAll(world);
  assert.ok((await placed(world, "m-1")).spec.node);

  await volume(world, "on-a", "a");
  await volume(world, "on-b", "b");
  await machineWith(world, "m-2", ["on-a", "on-b"]);
  await scheduleAll(world);
  const m2 = await placed(world, "m-2");
  assert.equal(m2.spec.node, undefined);
  assert.match(m2.status.reason ?? "", /its volumes are on different nodes/);
});
