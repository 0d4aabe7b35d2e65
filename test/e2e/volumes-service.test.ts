import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { PithClient } from "../../src/client/index.ts";
import type { Machine } from "../../src/model/kinds.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { TestCluster, waitFor } from "../support/cluster.ts";
import { appImage } from "../support/images.ts";
import { missingForMachines } from "../support/machines.ts";

const skip = missingForMachines();
const FIXTURE = "test/fixtures/volume-counter";

async function oneReady(client: PithClient, cluster: TestCluster, except?: string): Promise<Machine> {
  return waitFor(async () => {
    const { items } = await client.list("Machine", { labels: { "pith.dev/service": "counter" } });
    return items.length === 1 && items[0]!.status.phase === "ready" && items[0]!.metadata.name !== except ? items[0] : undefined;
  }, 180_000, `one ready counter machine${except ? ` other than ${except}` : ""}`, () => cluster.log());
}

async function countOf(cluster: TestCluster, machine: Machine): Promise<number> {
  const console = await readFile(join(cluster.home, "machines", machine.metadata.name, "console.log"), "utf8");
  const m = /volume-counter: count=(\d+)/.exec(console);
  assert.ok(m, `no count in ${machine.metadata.name}'s console:\n${console}`);
  return Number(m[1]);
}

describe("volumes through the control plane", { skip, timeout: 900_000 }, () => {
  test("a service's machine keeps its volumes across a kill -9 of its QEMU; the Volume names its one holder", async (t) => {
    execFileSync("make", ["-s", "-C", join(pithRoot(), FIXTURE)]);
    const image = await appImage(FIXTURE);
    const { cluster, client } = await TestCluster.start(t);
    await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "counter" }, spec: { image: image.record.digest, replicas: 1 } });

    const first = await oneReady(client, cluster);
    assert.deepEqual(first.spec.volumes, [{ name: "data", volume: "counter-data-0" }, { name: "scratch", volume: "counter-scratch-0" }]);
    assert.equal(await countOf(cluster, first), 1);
    const volume = await client.get("Volume", "counter-data-0");
    assert.equal(volume?.status.attachedTo, first.metadata.name);
    assert.equal(volume?.status.node, cluster.node("node-a"));
    assert.equal(volume?.spec.sizeMiB, 64);
    // Attached: it cannot be deleted.
    await assert.rejects(client.delete("Volume", "counter-data-0"), /attached to machine/);

    const [pid] = cluster.qemuPids("node-a");
    assert.ok(pid);
    process.kill(pid, "SIGKILL");
    const replacement = await oneReady(client, cluster, first.metadata.name);
    assert.deepEqual(replacement.spec.volumes?.map((v) => v.volume), ["counter-data-0", "counter-scratch-0"]);
    assert.equal(await countOf(cluster, replacement), 2, "the replacement read what the killed machine wrote");
    assert.equal(cluster.qemuPids("node-a").length, 1, "never two writers");
    assert.equal((await client.get("Volume", "counter-data-0"))?.status.attachedTo, replacement.metadata.name);

    await client.delete("Service", "counter");
    await waitFor(async () => ((await client.get("Volume", "counter-data-0"))?.status.attachedTo === undefined ? true : undefined), 60_000, "the volume is released", () => cluster.log());
    const dataFile = join(cluster.home, "volumes", "counter-data-0.ext4");
    const scratchFile = join(cluster.home, "volumes", "counter-scratch-0.ext4");
    assert.ok(existsSync(dataFile), "deleting the service keeps its data");
    await client.delete("Volume", "counter-data-0");
    await waitFor(async () => (existsSync(dataFile) ? undefined : true), 60_000, "the deleted volume's file is removed by its node", () => cluster.log());
    assert.ok(existsSync(scratchFile), "a Volume that still exists keeps its file");

    // The same service again starts from nothing on the deleted volume, and from what it left on the kept one.
    await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "counter" }, spec: { image: image.record.digest, replicas: 1 } });
    const again = await oneReady(client, cluster, replacement.metadata.name);
    assert.equal(await countOf(cluster, again), 1, "a deleted volume's data is gone for good");
  });
});
