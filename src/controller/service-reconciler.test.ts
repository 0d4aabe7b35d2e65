import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Machine } from "../model/kinds.ts";
import type { Outcome } from "./runner.ts";
import { SERVICE_LABEL } from "../model/labels.ts";
import { crashBackoffMs, STABLE_AFTER_MS } from "./service-reconciler.ts";
import { ControllerWorld } from "./test-support.ts";

const isRunning = (m: Machine) => m.spec.desiredState === "running" && m.status.phase !== "failed" && m.status.phase !== "stopped";
/** What the proxy routes to: ready and still wanted. */
const isServing = (m: Machine) => m.spec.desiredState === "running" && m.status.phase === "ready";
const requeueOf = (outcome: Outcome): number | undefined => outcome?.requeueAfterMs;

/** Reconciles `web`, has every new machine placed and ready: a service that has settled. */
async function settle(world: ControllerWorld, service = "web"): Promise<void> {
  await world.reconcileService(service);
  await world.placeAll();
  for (const m of await world.machines(service)) if (m.status.phase !== "ready") await world.report(m.metadata.name, "ready");
  await world.reconcileService(service);
}

describe("service reconciler: scaling", () => {
  test("creates `replicas` pending machines of the service's image, once", async (t) => {
    const world = ControllerWorld.create(t);
    const digest = await world.image("a", { memoryMiB: 96, vcpus: 2 });
    await world.applyService("web", { image: digest, replicas: 3, env: { GREETING: "hi" } });
    await world.reconcileService("web");
    const machines = await world.machines("web");
    assert.equal(machines.length, 3);
    for (const m of machines) {
      assert.equal(m.metadata.labels[SERVICE_LABEL], "web");
      assert.deepEqual(m.spec, { service: "web", image: digest, memoryMiB: 96, vcpus: 2, env: { GREETING: "hi" }, desiredState: "running" });
      assert.equal(m.status.phase, "pending");
    }
    assert.equal((await world.events("MachineCreated")).length, 3);
    // Level-based: looking again at the same state changes nothing.
    await world.reconcileService("web");
    assert.equal((await world.machines("web")).length, 3);
    const status = (await world.service("web")).status;
    assert.equal(status.desired, 3);
    assert.equal(status.imageDigest, digest);
    assert.equal(status.ready, 0);
  });

  test("scales down: placed machines are stopped through their agent, unplaced ones deleted, the not-ready first", async (t) => {
    const world = ControllerWorld.create(t);
    const digest = await world.image("a");
    await world.applyService("web", { image: digest, replicas: 2 });
    await settle(world);
    assert.equal((await world.service("web")).status.ready, 2);

    // Two more that are not placed yet, then back to one: the unplaced go (deleted at once),
    // and then one of the ready ones is stopped by its agent.
    await world.applyService("web", { image: digest, replicas: 4 });
    await world.reconcileService("web");
    const unplaced = (await world.machines("web")).filter((m) => !m.spec.node).map((m) => m.metadata.name);
    assert.equal(unplaced.length, 2);
    await world.applyService("web", { image: digest, replicas: 1 });
    await world.reconcileService("web");
    const left = await world.machines("web");
    for (const name of unplaced) assert.ok(!left.some((m) => m.metadata.name === name), `unplaced ${name} is deleted`);
    assert.equal(left.length, 2);
    assert.equal(left.filter(isServing).length, 1);
    const stopping = left.filter((m) => m.spec.desiredState === "stopped");
    assert.equal(stopping.length, 1, "the extra ready machine is handed to its agent to stop");
    assert.equal(stopping[0]!.status.phase, "ready", "the controller writes only spec: the agent drains it");
    assert.equal((await world.events("ScaledDown")).length, 3);

    await world.finishStops();
    await world.applyService("web", { image: digest, replicas: 0 });
    await world.reconcileService("web");
    assert.deepEqual((await world.machines("web")).map((m) => m.spec.desiredState), ["stopped"]);
  });
});

describe("service reconciler: scaling from zero", () => {
  test("a held request's machine is written first, its ScaledUp event after it, both in the one reconcile", async (t) => {
    const world = ControllerWorld.create(t);
    const digest = await world.image("a");
    await world.applyService("web", { image: digest, min: 0, max: 1 });
    await world.reconcileService("web");
    assert.equal((await world.machines("web")).length, 0, "at zero");
    world.load.report("web", { inFlight: 0, waiting: 1 });
    await world.reconcileService("web");
    const [machine, ...others] = await world.machines("web");
    assert.ok(machine && others.length === 0, "one machine for the held request");
    const [scaledUp] = await world.events("ScaledUp");
    assert.ok(scaledUp, "the scale-up is told");
    const revision = (r: string): number => Number(r);
    assert.ok(revision(machine.metadata.resourceVersion) < revision(scaledUp.metadata.resourceVersion), `the machine (revision ${machine.metadata.resourceVersion}) did not wait for the event (${scaledUp.metadata.resourceVersion})`);
    assert.equal((await world.events("MachineCreated")).length, 1);
  });
});

describe("service reconciler: rolling update", () => {
  const desired = 3;
  for (const update of [
    { maxSurge: 1, maxUnavailable: 0 },
    { maxSurge: 0, maxUnavailable: 1 },
    { maxSurge: 2, maxUnavailable: 1 },
  ]) {
    test(`maxSurge ${update.maxSurge}, maxUnavailable ${update.maxUnavailable}: never more than desired+surge machines, never fewer serving than desired-unavailable`, async (t) => {
      const world = ControllerWorld.create(t);
      const v1 = await world.image("a");
      const v2 = await world.image("b");
      await world.applyService("web", { image: v1, replicas: desired, update: { strategy: "rolling", ...update } });
      await settle(world);

      // Every committed write is checked, not only the state between steps: the proxy sees each.
      const seen = new Map<string, Machine>();
      for (const m of await world.machines("web")) seen.set(m.metadata.name, m);
      const violations: string[] = [];
      let mostRunning = 0;
      let fewestServing = desired;
      const unwatch = await world.store.watch("Machine", await world.store.revision(), (event) => {
        const m = event.object as Machine;
        if (event.type === "DELETED") seen.delete(m.metadata.name);
        else seen.set(m.metadata.name, m);
        const all = [...seen.values()];
        const running = all.filter(isRunning).length;
        // All old machines were serving, so this also says an old one is retired only once a
        // new one is ready (or the unavailability budget allows it).
        const serving = all.filter(isServing).length;
        mostRunning = Math.max(mostRunning, running);
        fewestServing = Math.min(fewestServing, serving);
        if (running > desired + update.maxSurge) violations.push(`r${event.resourceVersion}: ${running} machines running`);
        if (serving < desired - update.maxUnavailable) violations.push(`r${event.resourceVersion}: only ${serving} serving`);
      });
      t.after(unwatch);

      await world.applyService("web", { image: v2, replicas: desired, update: { strategy: "rolling", ...update } });
      let steps = 0;
      for (; steps < 30; steps++) {
        await world.reconcileService("web");
        const machines = await world.machines("web");
        if (machines.length === desired && machines.every((m) => m.spec.image === v2 && isServing(m))) break;
        // The agents' side, one machine at a time so every intermediate state is visited: new
        // machines are placed and booting for one reconcile, then one of them gets ready.
        await world.finishStops();
        await world.placeAll();
        const booting = (await world.machines("web")).filter((m) => m.spec.image === v2 && m.spec.desiredState === "running" && m.status.phase !== "ready");
        for (const m of booting) if (m.status.phase === "pending") await world.report(m.metadata.name, "booting");
        await world.reconcileService("web");
        world.clock.advance(1000);
        if (booting[0]) await world.report(booting[0].metadata.name, "ready");
      }
      assert.ok(steps < 30, "the rollout finished");
      assert.deepEqual(violations, []);
      // The budgets are used, not just respected: a rollout that went one by one would pass the
      // bounds above while ignoring maxSurge.
      assert.equal(mostRunning, desired + update.maxSurge);
      assert.equal(fewestServing, desired - update.maxUnavailable);
      const status = (await world.service("web")).status;
      assert.equal(status.imageDigest, v2);
      assert.equal(status.ready, desired);
    });
  }

  for (const newMachines of ["never get ready", "crash"] as const) {
    test(`new machines that ${newMachines} leave the old ones serving`, async (t) => {
      const world = ControllerWorld.create(t);
      const v1 = await world.image("a");
      const v2 = await world.image("b");
      await world.applyService("web", { image: v1, replicas: 2, update: { strategy: "rolling", maxSurge: 1, maxUnavailable: 0 } });
      await settle(world);
      const old = (await world.machines("web")).map((m) => m.metadata.name).sort();

      await world.applyService("web", { image: v2, replicas: 2, update: { strategy: "rolling", maxSurge: 1, maxUnavailable: 0 } });
      for (let step = 0; step < 10; step++) {
        await world.reconcileService("web");
        await world.finishStops();
        await world.placeAll();
        for (const m of await world.machines("web")) {
          if (m.spec.image !== v2 || m.spec.desiredState !== "running") continue;
          if (newMachines === "crash") await world.report(m.metadata.name, "failed", { reason: "app exited with code 1" });
          else if (m.status.phase === "pending") await world.report(m.metadata.name, "booting");
        }
        world.clock.advance(5000);
      }
      const machines = await world.machines("web");
      assert.deepEqual(machines.filter((m) => m.spec.image === v1 && isServing(m)).map((m) => m.metadata.name).sort(), old);
      assert.ok(machines.filter((m) => m.spec.image === v2 && isRunning(m)).length <= 1, "no more than maxSurge new machines at once");
      const status = (await world.service("web")).status;
      assert.equal(status.ready, 0, "no machine of the current image is ready");
      if (newMachines === "crash") assert.ok(status.crashLoop && status.crashLoop.failures >= 2, "the crashes are counted");
    });
  }
});

describe("service reconciler: crash back-off", () => {
  test("2 s, doubling, at most 1 min", () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 20].map(crashBackoffMs), [2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  });

  test("a failed machine is retired and replaced after 2 s, then 4 s; status.crashLoop and MachineFailed say so; stability forgives", async (t) => {
    const world = ControllerWorld.create(t);
    const digest = await world.image("a");
    await world.applyService("web", { image: digest, replicas: 1 });
    await settle(world);

    /** Fails the service's running machine now; returns its name. */
    const failOne = async (reason: string): Promise<string> => {
      const [m] = (await world.machines("web")).filter(isRunning);
      assert.ok(m, "a machine is running");
      await world.report(m.metadata.name, "failed", { reason, exitCode: 3 });
      return m.metadata.name;
    };
    const runningCount = async () => (await world.machines("web")).filter(isRunning).length;

    for (const [failures, backoffMs] of [
      [1, 2000],
      [2, 4000],
    ] as const) {
      world.clock.advance(500);
      const failed = await failOne(`app exited with code 3 (#${failures})`);
      const failedAt = world.clock.now();
      const outcome = await world.reconcileService("web");
      assert.equal((await world.machine(failed)).spec.desiredState, "stopped", "the failed machine is retired");
      assert.equal(await runningCount(), 0, "no replacement before the back-off");
      const crashLoop = (await world.service("web")).status.crashLoop;
      assert.deepEqual(crashLoop, { failures, lastReason: `app exited with code 3 (#${failures})`, nextAttemptAt: new Date(failedAt + backoffMs).toISOString() });
      const requeue = requeueOf(outcome);
      assert.ok(requeue !== undefined && requeue > 0 && requeue <= backoffMs, `comes back in time (requeue ${requeue})`);
      const event = (await world.events("MachineFailed")).at(-1);
      assert.equal(event?.spec.type, "Warning");
      assert.equal(event?.spec.message, `${failed}: app exited with code 3 (#${failures}); replacing in ${backoffMs / 1000}s`);
      assert.equal((await world.events("MachineFailed")).length, failures);

      await world.finishStops();
      world.clock.advance(backoffMs - 1);
      await world.reconcileService("web");
      assert.equal(await runningCount(), 0, `still waiting 1 ms before ${backoffMs} ms`);
      world.clock.advance(1);
      await world.reconcileService("web");
      assert.equal(await runningCount(), 1, `replaced after ${backoffMs} ms`);
      await world.placeAll();
      const [replacement] = (await world.machines("web")).filter(isRunning);
      await world.report(replacement!.metadata.name, "ready");
      await world.reconcileService("web");
    }

    // Ready is not enough: one that dies a moment later is the crash loop itself.
    world.clock.advance(STABLE_AFTER_MS - 1);
    await world.reconcileService("web");
    assert.equal((await world.service("web")).status.crashLoop?.failures, 2);
    world.clock.advance(1);
    await world.reconcileService("web");
    assert.equal((await world.service("web")).status.crashLoop, undefined, "forgiven after staying ready");
  });
});
