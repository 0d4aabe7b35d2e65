import type { Kind } from "../model/resource.ts";
import { MACHINE_PHASES, type MachinePhase } from "../model/kinds.ts";
import { machinesByPhase } from "../shared/metrics.ts";
import type { Store } from "../store/store.ts";
import type { EventRecorder } from "./event-recorder.ts";
import { type ControllerInformers, informersFor } from "./informers.ts";
import { writeBack } from "./object-updates.ts";
import type { Outcome, Reconciler } from "./runner.ts";
import { isNodeLive } from "./scheduler.ts";

/**
 * Marks nodes whose agent stopped reporting for NODE_STALE_MS as NotReady, and keeps the
 * machines-by-phase gauge current. A NotReady node is "lost" (model/node-placement.ts): the service
 * reconciler replaces its machines elsewhere, and its agent, if it returns, re-adopts the machines
 * that were not replaced and stops those that were.
 */
export class NodeHealth implements Reconciler {
  readonly name = "node-health";
  readonly watches: Kind[] = [];

  constructor(
    private readonly store: Store,
    private readonly events: EventRecorder,
    /** The clock heartbeats are judged by (tests drive their own). */
    private readonly now: () => number = Date.now,
    private readonly informers: ControllerInformers = informersFor(store),
  ) {}

  keysFor(): string[] {
    return [];
  }

  async allKeys(): Promise<string[]> {
    return ["cluster"];
  }

  async reconcile(): Promise<Outcome> {
    await this.informers.start();
    for (const node of this.informers.nodes.list()) {
      if (node.status.ready && !isNodeLive(node, this.now())) {
        await writeBack(this.store, node, { status: { ...node.status, ready: false } });
        await this.events.record({ kind: "Node", name: node.metadata.name }, "Warning", "NodeNotReady", `no heartbeat since ${node.status.heartbeatAt}`);
      }
    }
    const counts = new Map<MachinePhase, number>(MACHINE_PHASES.map((phase) => [phase, 0]));
    for (const m of this.informers.machines.list()) counts.set(m.status.phase, (counts.get(m.status.phase) ?? 0) + 1);
    for (const [phase, count] of counts) machinesByPhase.set({ phase }, count);
  }
}
