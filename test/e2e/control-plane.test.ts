import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { PithClient } from "../../src/client/index.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import type { Machine } from "../../src/model/kinds.ts";
import { TestCluster, waitFor } from "../support/cluster.ts";
import { appImage } from "../support/images.ts";
import { httpGet, missingForMachines } from "../support/machines.ts";

const skip = missingForMachines();

async function applyService(client: PithClient, name: string, image: string, replicas: number, env: Record<string, string> = {}): Promise<void> {
  await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name }, spec: { image, replicas, env } });
}

async function readyMachines(client: PithClient, service: string, count: number, cluster: TestCluster, timeoutMs = 120_000): Promise<Machine[]> {
  return waitFor(
    async () => {
      const { items } = await client.list("Machine", { labels: { "pith.dev/service": service } });
      return items.length === count && items.every((m) => m.status.phase === "ready") ? items : undefined;
    },
    timeoutMs,
    `${service} has exactly ${count} ready machines`,
    () => cluster.log(),
  );
}

/** Waits until a node's agent has sent `count` more heartbeats. */
async function heartbeats(client: PithClient, cluster: TestCluster, node: string, count: number): Promise<void> {
  const heartbeatOf = async () => (await client.get("Node", cluster.node(node)))?.status.heartbeatAt;
  for (let beat = 0; beat < count; beat++) {
    const last = await heartbeatOf();
    await waitFor(async () => ((await heartbeatOf()) !== last ? true : undefined), 30_000, `a heartbeat of ${node}`, () => cluster.log());
  }
}

describe("control plane, agent and machines", { skip, timeout: 900_000, concurrency: false }, () => {
  test("a 2-machine service becomes ready, scales to 3 and to 1, and deleting it leaves no VM", async (t) => {
    const image = await appImage("examples/static-c");
    const { cluster, client } = await TestCluster.start(t);

    await applyService(client, "web", image.record.digest, 2);
    const two = await readyMachines(client, "web", 2, cluster);
    assert.equal(cluster.qemuPids("node-a").length, 2, "one QEMU per machine");
    for (const m of two) {
      assert.equal(m.spec.node, cluster.node("node-a"));
      assert.ok(m.status.timings?.readyMs, "boot timings reported");
      assert.equal((await httpGet(m.status.addresses![0]!.url)).status, 200);
    }
    // The service controller counts ready machines after their agents report them: a moment later.
    await waitFor(async () => ((await client.get("Service", "web"))?.status.ready === 2 ? true : undefined), 30_000, "the service counts both machines ready", () => cluster.log());

    await client.scale("web", 3);
    await readyMachines(client, "web", 3, cluster);
    assert.equal(cluster.qemuPids("node-a").length, 3);

    await client.scale("web", 1);
    await readyMachines(client, "web", 1, cluster);
    await waitFor(async () => (cluster.qemuPids("node-a").length === 1 ? true : undefined), 30_000, "two VMs are stopped");

    await client.delete("Service", "web");
    await waitFor(async () => ((await client.list("Machine")).items.length === 0 ? true : undefined), 60_000, "every machine object is gone", () => cluster.log());
    await waitFor(async () => (cluster.qemuPids("node-a").length === 0 ? true : undefined), 30_000, "every VM is gone");
  });

  test("kill -9 of the agent: the restarted agent re-adopts every machine, with its saved state and without", async (t) => {
    const image = await appImage("examples/static-c");
    const { cluster, client } = await TestCluster.start(t);
    await applyService(client, "web", image.record.digest, 2);
    const before = await readyMachines(client, "web", 2, cluster);
    const pids = cluster.qemuPids("node-a");
    assert.deepEqual(before.map((m) => m.status.pid).sort((a, b) => a! - b!), pids);

    for (const withState of [true, false]) {
      await TestCluster.kill9(cluster.agents.get("node-a"));
      assert.deepEqual(cluster.qemuPids("node-a"), pids, "the machines outlive their agent");
      if (!withState) rmSync(join(cluster.home, "agent"), { recursive: true, force: true });
      const mark = cluster.logMark();
      await cluster.startAgent("node-a");
      const adopted = withState ? /re-adopted machine web-\w+ \(pid \d+, from its saved handle\)/g : /re-adopted machine web-\w+ \(pid \d+, found on the host without a handle\)/g;
      await waitFor(async () => ((cluster.logSince(mark).match(adopted) ?? []).length >= 2 ? true : undefined), 60_000, "the restarted agent re-adopts both machines", () => cluster.log());
      // Then two of its heartbeats: rounds in which it could still do something wrong.
      await heartbeats(client, cluster, "node-a", 2);
      const after = await readyMachines(client, "web", 2, cluster);
      assert.deepEqual(cluster.qemuPids("node-a"), pids, `same QEMU processes, no duplicates (${withState ? "with" : "without"} saved state)`);
      assert.deepEqual(after.map((m) => m.metadata.name).sort(), before.map((m) => m.metadata.name).sort(), "no machine replaced");
      for (const m of after) assert.equal((await httpGet(m.status.addresses![0]!.url)).status, 200);
    }
  });

  test("kill -9 of the control plane: same objects after restart, machines untouched", async (t) => {
    const image = await appImage("examples/static-c");
    const { cluster, client } = await TestCluster.start(t);
    await applyService(client, "web", image.record.digest, 2);
    const before = await readyMachines(client, "web", 2, cluster);
    const pids = cluster.qemuPids("node-a");
    const services = (await client.list("Service")).items;

    await TestCluster.kill9(cluster.server);
    for (const m of before) assert.equal((await httpGet(m.status.addresses![0]!.url)).status, 200, "machines serve while the control plane is down");
    await cluster.startServer();
    const afterServices = (await client.list("Service")).items;
    assert.deepEqual(afterServices.map((s) => [s.metadata.name, s.metadata.uid]), services.map((s) => [s.metadata.name, s.metadata.uid]));
    // Two heartbeats of the agent through the new server: rounds in which it could do something wrong.
    await heartbeats(client, cluster, "node-a", 2);
    const after = await readyMachines(client, "web", 2, cluster);
    assert.deepEqual(after.map((m) => [m.metadata.name, m.metadata.uid, m.status.pid]).sort(), before.map((m) => [m.metadata.name, m.metadata.uid, m.status.pid]).sort());
    assert.deepEqual(cluster.qemuPids("node-a"), pids);
  });

  test("a machine that keeps failing is replaced with back-off, visibly", async (t) => {
    const image = await appImage("examples/batch");
    const { cluster, client } = await TestCluster.start(t);
    // The batch job exits at once with code 1: a service of it can never stay up.
    await applyService(client, "crashy", image.record.digest, 1, { EXIT_CODE: "1", PRIMES_BELOW: "10" });
    const service = await waitFor(
      async () => {
        const s = await client.get("Service", "crashy");
        return s?.status.crashLoop && s.status.crashLoop.failures >= 2 ? s : undefined;
      },
      180_000,
      "the service shows a crash loop",
      () => cluster.log(),
    );
    assert.match(service.status.crashLoop!.lastReason, /exited with code 1/);
    const events = await client.events("Service", "crashy");
    assert.ok(events.filter((e) => e.spec.reason === "MachineFailed").length >= 2, "each failure is an event");
    const delays = events.filter((e) => e.spec.reason === "MachineFailed").map((e) => Number(/replacing in ([\d.]+)s/.exec(e.spec.message)?.[1]));
    assert.ok(delays[1]! > delays[0]!, `back-off grows: ${delays.join(", ")}`);
    await client.delete("Service", "crashy");
    await waitFor(async () => (cluster.qemuPids("node-a").length === 0 ? true : undefined), 60_000, "every VM is gone");
  });
});
