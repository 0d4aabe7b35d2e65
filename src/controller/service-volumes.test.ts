import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Image, Machine, Volume } from "../model/kinds.ts";
import { API_VERSION } from "../model/resource.ts";
import { serviceSpecRules } from "../api/schemas/rules.ts";
import { VOLUME_INDEX_LABEL } from "./service-reconciler.ts";
import { ControllerWorld } from "./test-support.ts";

/** An image declaring one 64 MiB volume `data`. */
async function imageWithVolume(world: ControllerWorld, tag: string): Promise<string> {
  const digest = `sha256:${tag.repeat(64).slice(0, 64)}`;
  await world.store.create<Image>({
    apiVersion: API_VERSION, kind: "Image", metadata: { name: `img-${tag}` },
    spec: { digest, runtime: "native", memoryMiB: 64, vcpus: 1, listen: [], egress: [], storedBytes: 0, volumes: [{ name: "data", mount: "/data", sizeMiB: 64 }] },
    status: {},
  });
  return digest;
}

const volumesOf = (m: Machine) => m.spec.volumes?.map((v) => v.volume);
const live = (machines: Machine[]) => machines.filter((m) => m.spec.desiredState === "running");

async function settle(world: ControllerWorld): Promise<void> {
  await world.reconcileService("db");
  await world.placeAll();
  for (const m of await world.machines("db")) if (m.spec.desiredState === "running" && m.status.phase !== "ready") await world.report(m.metadata.name, "ready");
  await world.reconcileService("db");
}

describe("service reconciler: volumes", () => {
  test("each machine index gets its own Volume, made once; a replacement gets the same one", async (t) => {
    const world = ControllerWorld.create(t);
    const digest = await imageWithVolume(world, "a");
    await world.applyService("db", { image: digest, replicas: 2 });
    await settle(world);
    const machines = await world.machines("db");
    assert.deepEqual(machines.map(volumesOf).sort(), [["db-data-0"], ["db-data-1"]]);
    const volumes = (await world.store.list<Volume>("Volume")).items;
    assert.deepEqual(volumes.map((v) => [v.metadata.name, v.spec.sizeMiB]).sort(), [["db-data-0", 64], ["db-data-1", 64]]);

    // Machine of index 0 fails: its replacement waits until it is gone, then takes db-data-0.
    const failed = machines.find((m) => m.metadata.labels[VOLUME_INDEX_LABEL] === "0")!;
    await world.report(failed.metadata.name, "failed", { reason: "killed" });
    await world.reconcileService("db");
    await world.reconcileService("db");
    assert.equal(live(await world.machines("db")).length, 1, "no replacement while the failed machine's object (its QEMU's holder) exists");
    await world.finishStops();
    world.clock.advance(60_000);
    await world.reconcileService("db");
    const replacement = live(await world.machines("db")).find((m) => m.metadata.name !== machines.find((x) => x.metadata.labels[VOLUME_INDEX_LABEL] === "1")!.metadata.name)!;
    assert.deepEqual(volumesOf(replacement), ["db-data-0"]);
    assert.equal((await world.store.list<Volume>("Volume")).items.length, 2, "no new volume");
  });

  test("an update is stop-then-start: never two machines on one volume, whatever maxSurge says", async (t) => {
    const world = ControllerWorld.create(t);
    const a = await imageWithVolume(world, "a");
    const b = await imageWithVolume(world, "b");
    await world.applyService("db", { image: a, replicas: 1, update: { strategy: "rolling", maxSurge: 3, maxUnavailable: 0 } });
    await settle(world);
    await world.applyService("db", { image: b, replicas: 1, update: { strategy: "rolling", maxSurge: 3, maxUnavailable: 0 } });
    for (let i = 0; i < 3; i++) {
      await world.reconcileService("db");
      const onVolume = (await world.machines("db")).filter((m) => volumesOf(m)?.includes("db-data-0"));
      assert.equal(onVolume.length, 1, `one machine object per volume at a time: ${onVolume.map((m) => m.metadata.name)}`);
    }
    assert.equal((await world.machines("db"))[0]!.spec.desiredState, "stopped", "the old machine is stopped first");
    await world.finishStops();
    await world.reconcileService("db");
    const [next] = await world.machines("db");
    assert.equal(next!.spec.image, b);
    assert.deepEqual(volumesOf(next!), ["db-data-0"]);
  });

  test("a single-volume service shares <service>-<volume> and runs at most one machine", async (t) => {
    const world = ControllerWorld.create(t);
    const digest = await imageWithVolume(world, "a");
    await world.applyService("db", { image: digest, min: 0, max: 1, volumes: "single" });
    await world.applyService("db", { image: digest, replicas: 1, volumes: "single" });
    await settle(world);
    assert.deepEqual((await world.machines("db")).map(volumesOf), [["db-data"]]);
    assert.match(serviceSpecRules({ image: "x", replicas: 2, volumes: "single" })[0]?.message ?? "", /at most one machine/);
    assert.deepEqual(serviceSpecRules({ image: "x", replicas: 2, volumes: "perMachine" }), []);
  });
});

test("a service never takes a Volume it did not make: another service's (names can collide) or one made by hand", async (t) => {
  const world = ControllerWorld.create(t);
  const digest = await imageWithVolume(world, "a");
  await world.store.create<Volume>({ apiVersion: API_VERSION, kind: "Volume", metadata: { name: "db-data-0", labels: { "pith.dev/service": "db-data" } }, spec: { sizeMiB: 64 } });
  await world.applyService("db", { image: digest, replicas: 1 });
  await world.reconcileService("db");
  assert.equal((await world.machines("db")).length, 0);
  assert.match((await world.events("VolumeTaken"))[0]?.spec.message ?? "", /volume db-data-0 exists and does not belong to service db/);
});
