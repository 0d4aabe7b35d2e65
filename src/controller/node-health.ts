import type { Kind } from "../model/resource.ts";
import { MACHINE_PHASES, type Machine, type PithNode } from "../model/kinds.ts";
import { machinesByPhase } from "../shared/metrics.ts";
import type { Store } from "../store/store.ts";
import type { EventRecorder } from "./event-recorder.ts";
import { writeBack } from "./object-updates.ts";
import type { Outcome, Reconciler } from "./runner.ts";
import { isNodeLive } from "./scheduler.ts";

/**
 * Marks nodes whose agent stopped reporting as not ready (their machines stay where they are:
 * a restarted agent re-adopts them) and keeps the machines-by-phase gauge current.
 */
export class NodeHealth implements Reconciler {
  readonly name = "node-health";
  readonly watches: Kind[] = [];

  constructor(
    private readonly store: Store,
    private readonly events: EventRecorder,
    /** The clock heartbeats are judged by (tests drive their own). */
    private readonly now: () => number = Date.now,
  ) {}

  keysFor(): string[] {
    return [];
  }

  async allKeys(): Promise<string[]> {
    return ["cluster"];
  }

  async reconcile(): Promise<Outcome> {
    for (const node of (await this.store.list<PithNode>("Node")).items) {
      if (node.status.ready && !isNodeLive(node, this.now())) {
        await writeBack(this.store, node, { status: { ...node.status, ready: false } });
        await this.events.record({ kind: "Node", name: node.metadata.name }, "Warning", "NodeNotReady", `no heartbeat since ${node.status.heartbeatAt}`);
      }
    }
    const machines = (await this.store.list<Machine>("Machine")).items;
    for (const phase of MACHINE_PHASES) machinesByPhase.set({ phase }, machines.filter((m) => m.status.phase === phase).length);
  }
}
