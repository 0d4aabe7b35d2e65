import type { TestContext } from "node:test";
import type { Machine, NodeSpec, PithNode } from "../model/kinds.ts";
import { writeBack } from "./object-updates.ts";
import { ControllerWorld } from "./test-support.ts";

/**
 * A ControllerWorld of several hosts, judged by the wall clock (the scheduler reads heartbeats by
 * it): what the spread, cordon, drain and node-loss tests share.
 */
export async function worldOfNodes(t: TestContext, names: string[], capacity = { memoryMiB: 4096, vcpus: 8 }): Promise<ControllerWorld> {
  const world = ControllerWorld.create(t);
  world.clock.ms = Date.now();
  for (const name of names) await world.node(name, capacity);
  return world;
}

export async function setNodeSpec(world: ControllerWorld, name: string, change: Partial<NodeSpec>): Promise<void> {
  const node = (await world.store.get<PithNode>("Node", name))!;
  await writeBack(world.store, node, { spec: { ...node.spec, ...change } });
}

/** What NodeHealth writes when a node's heartbeats stopped. */
export async function markNotReady(world: ControllerWorld, name: string): Promise<void> {
  const node = (await world.store.get<PithNode>("Node", name))!;
  await writeBack(world.store, node, { status: { ...node.status, ready: false } });
}

/** A heartbeat from the node's agent at `at` (default the world's clock), ready again if it was not. */
export async function heartbeat(world: ControllerWorld, name: string, at = world.clock.iso()): Promise<void> {
  const node = (await world.store.get<PithNode>("Node", name))!;
  await writeBack(world.store, node, { status: { ...node.status, ready: true, heartbeatAt: at } });
}

/** Runs the scheduler's pass, as the runner does for pending machines. */
export const scheduleAll = (world: ControllerWorld) => world.schedule("(pending)");

/** Every placed machine that is not ready yet reports ready, as its agent would once it booted. */
export async function bootAll(world: ControllerWorld, service = "web"): Promise<void> {
  for (const m of await world.machines(service)) if (m.spec.node && m.spec.desiredState === "running" && m.status.phase === "pending") await world.report(m.metadata.name, "ready");
}

/** Reconcile, place, boot, reconcile: a service that settled. */
export async function settle(world: ControllerWorld, service = "web"): Promise<void> {
  await world.reconcileService(service);
  await scheduleAll(world);
  await bootAll(world, service);
  await world.reconcileService(service);
}

export const wanted = (machines: Machine[]) => machines.filter((m) => m.spec.desiredState === "running");
export const nodesOf = (machines: Machine[]) => wanted(machines).map((m) => m.spec.node ?? "-").sort();
