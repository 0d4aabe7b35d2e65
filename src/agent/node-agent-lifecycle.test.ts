import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { test } from "node:test";
import { ApiError, PithClient } from "../client/index.ts";
import type { WatchHandler, WatchOptions } from "../client/watch.ts";
import type { Kind } from "../model/resource.ts";
import type { Machine as RunningMachine, MachineSpec } from "../hypervisor/hypervisor.ts";
import { until } from "../../test/support/until.ts";
import { AgentWorld, CountingHypervisor, exitOf, GUEST_PORT, NODE } from "./test-support.ts";

test("start: a machine placed on the agent's node boots, becomes ready, and its status says how", async (t) => {
  const world = await AgentWorld.start(t);
  await world.startAgent();
  await world.place("m1");
  const ready = await world.reaches("m1", "ready");
  const running = await world.hypervisor.running("m1");
  assert.deepEqual(world.hypervisor.starts, ["m1"]);
  assert.deepEqual(world.phases("m1"), ["pending", "booting", "ready"]);
  const { status } = ready;
  assert.equal(status.node, NODE);
  assert.equal(status.pid, running.pid);
  assert.equal(status.accelerator, "tcg");
  assert.equal(status.startedFrom, "boot");
  assert.deepEqual(status.addresses, running.ports);
  assert.equal(status.addresses?.[0]?.guestPort, GUEST_PORT);
  assert.equal(typeof status.timings?.readyMs, "number");
  assert.ok(status.startedAt && status.readyAt && status.startedAt <= status.readyAt, "started, then ready");
});

test("stop: desiredState stopped drains the machine for drainMs, stops it, then deletes the object", async (t) => {
  const world = await AgentWorld.start(t);
  const drainMs = 200;
  await world.startAgent({ drainMs });
  await world.place("m1");
  await world.reaches("m1", "ready");
  const running = await world.hypervisor.running("m1");
  const exited = exitOf(running);

  await world.retire("m1");
  await world.reaches("m1", "draining");
  // This runs as the draining write is seen, before any timer: the machine still serves.
  const drainingAt = performance.now();
  assert.equal(running.exit, undefined, "still running while it drains");
  await world.deleted("m1");
  assert.notEqual(running.exit, undefined, "stopped before its object is deleted");
  const drained = (await exited) - drainingAt;
  // Timers may fire up to a millisecond early.
  assert.ok(drained >= drainMs - 2, `drained ${drained.toFixed(0)} ms`);
  assert.deepEqual(world.phases("m1"), ["pending", "booting", "ready", "draining", "(deleted)"]);
  assert.deepEqual(await world.hypervisor.recover(), []);
});

test("re-adopt: a new agent carries on with the machines already running, starts no duplicate, stops orphans", async (t) => {
  const world = await AgentWorld.start(t);
  const first = await world.startAgent();
  await world.place("kept");
  await world.place("orphan");
  const kept = await world.reaches("kept", "ready");
  await world.reaches("orphan", "ready");
  first.stop();

  // While no agent runs: the orphan's object goes (say, its service was deleted).
  const orphan = await world.hypervisor.running("orphan");
  await world.server.store.delete("Machine", "orphan");

  await world.startAgent();
  await exitOf(orphan);
  const adopted = await world.hypervisor.running("kept");
  assert.equal(adopted.pid, kept.status.pid, "the same process");
  // Asking the new agent to stop it proves it holds the handle: it drains, stops and deletes.
  await world.retire("kept");
  await world.deleted("kept");
  assert.notEqual(adopted.exit, undefined, "the adopted machine was stopped by the new agent");
  assert.deepEqual(world.hypervisor.starts, ["kept", "orphan"], "nothing was started twice");
  assert.ok(!world.phases("kept").includes("failed"), "never reported as lost");
});

/** A client whose watches deliver nothing, as if every event were lost on the way. */
class DeafClient extends PithClient {
  override watch<K extends Kind>(_kind: K, options: WatchOptions<never>, _onEvent: WatchHandler<never>): Promise<void> {
    return new Promise((resolve) => options.signal.addEventListener("abort", () => resolve()));
  }
}

test("relist: machines whose watch events were missed are still started and stopped", async (t) => {
  const world = await AgentWorld.start(t);
  await world.startAgent({ client: new DeafClient({ server: world.server.url, token: world.server.token }), resyncMs: 100, relistMs: 100 });
  // Placed after the agent's first full list: only a resync can find it.
  await world.place("m1");
  await world.reaches("m1", "ready");
  await world.retire("m1");
  await world.deleted("m1");
  assert.deepEqual(world.hypervisor.starts, ["m1"]);
  assert.deepEqual(await world.hypervisor.recover(), []);
});

test("a status report the API fails once is made again: the machine does not stay booting", async (t) => {
  const world = await AgentWorld.start(t);
  const client = new PithClient({ server: world.server.url, token: world.server.token });
  let writes = 0;
  const write = client.updateMachineStatuses.bind(client);
  // The second status write (the machine's "ready") meets a control plane that is briefly away.
  client.updateMachineStatuses = async (entries) => {
    if (++writes === 2) throw new ApiError(503, "Unavailable", "the store is briefly unavailable");
    return write(entries);
  };
  await world.startAgent({ client, hypervisor: new CountingHypervisor({ bootMs: 100 }) });
  await world.place("m1");
  await world.reaches("m1", "ready", 10_000);
  assert.ok(writes >= 3, `the failed write was made again (${writes} writes)`);
  assert.deepEqual(world.phases("m1"), ["pending", "booting", "ready"]);
});

test("a machine told to stop while it boots goes draining, then away: its readiness never writes it back to ready", async (t) => {
  const world = await AgentWorld.start(t);
  await world.startAgent({ hypervisor: new CountingHypervisor({ bootMs: 300 }), drainMs: 1000 });
  await world.place("m2");
  await world.reaches("m2", "booting");
  await world.retire("m2");
  await world.deleted("m2", 10_000);
  assert.deepEqual(world.phases("m2"), ["pending", "booting", "draining", "(deleted)"]);
});

/** A driver whose starts spawn the machine but, while `hang` is set, never return: an agent killed mid-start. */
class HangingStarts extends CountingHypervisor {
  hang = true;
  override async start(spec: MachineSpec): Promise<RunningMachine> {
    const machine = await super.start(spec);
    if (this.hang) await new Promise(() => undefined);
    return machine;
  }
}

test("re-adopt: a machine whose start the last agent never finished recording is adopted, not started again", async (t) => {
  const world = await AgentWorld.start(t);
  const hypervisor = new HangingStarts({ bootMs: 20 });
  const first = await world.startAgent({ hypervisor });
  await world.place("m1");
  await until("the first agent's start to have spawned m1", () => hypervisor.machinesRunning().some((m) => m.id === "m1"), { timeoutMs: 5000 });
  first.stop(); // it never recorded a handle for m1
  hypervisor.hang = false;
  await world.startAgent({ hypervisor });
  await world.reaches("m1", "ready", 10_000);
  assert.deepEqual(hypervisor.starts, ["m1"], "m1 was not started a second time");
  assert.deepEqual(hypervisor.machinesRunning().map((m) => m.id), ["m1"]);
  assert.ok(!world.phases("m1").includes("failed"), `never reported as lost: ${world.phases("m1").join(", ")}`);
});

test("a status report the API refuses is dropped, not retried: it cannot hold back the machine's stop", async (t) => {
  const world = await AgentWorld.start(t);
  const client = new PithClient({ server: world.server.url, token: world.server.token });
  let refused = 0;
  const write = client.updateMachineStatuses.bind(client);
  // Every "ready" report is refused as invalid: retrying it would block the machine for good.
  client.updateMachineStatuses = async (entries) => {
    if (entries.some((e) => e.status.phase === "ready")) {
      refused++;
      throw new ApiError(400, "Invalid", "status.timings: not what the API takes");
    }
    return write(entries);
  };
  await world.startAgent({ client, hypervisor: new CountingHypervisor({ bootMs: 20 }) });
  await world.place("m3");
  await until("the ready report to be refused", () => refused > 0, { timeoutMs: 10_000 });
  // A change to the machine gives the agent another turn at it: a kept report would be made again.
  const m = (await world.client.get("Machine", "m3"))!;
  await world.client.update({ apiVersion: m.apiVersion, kind: m.kind, metadata: { name: "m3", labels: { touched: "yes" }, resourceVersion: m.metadata.resourceVersion }, spec: m.spec, status: m.status });
  await world.retire("m3");
  await world.deleted("m3", 10_000);
  assert.equal(refused, 1, "refused once, not retried");
});
