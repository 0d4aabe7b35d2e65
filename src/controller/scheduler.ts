import type { Kind, WatchEvent } from "../model/resource.ts";
import type { Machine, PithNode } from "../model/kinds.ts";
import type { Store } from "../store/store.ts";
import type { EventRecorder } from "./event-recorder.ts";
import { writeBack } from "./object-updates.ts";
import type { Outcome, Reconciler } from "./runner.ts";

/** A node whose agent has not reported for this long is not given new machines. */
export const NODE_STALE_MS = 20_000;

export const isNodeLive = (node: PithNode, now = Date.now()): boolean =>
  node.status.ready === true && node.status.heartbeatAt !== undefined && now - Date.parse(node.status.heartbeatAt) < NODE_STALE_MS;

/** What the machines placed on each node claim. */
export function allocations(machines: Machine[]): Map<string, { memoryMiB: number; vcpus: number; machines: number }> {
  const byNode = new Map<string, { memoryMiB: number; vcpus: number; machines: number }>();
  for (const m of machines) {
    if (!m.spec.node || m.status.phase === "stopped" || m.status.phase === "failed") continue;
    const a = byNode.get(m.spec.node) ?? { memoryMiB: 0, vcpus: 0, machines: 0 };
    a.memoryMiB += m.spec.memoryMiB;
    a.vcpus += m.spec.vcpus;
    a.machines += 1;
    byNode.set(m.spec.node, a);
  }
  return byNode;
}

/**
 * Places each unscheduled machine on the live node with the most free memory that fits both its
 * memory and its vCPUs. A machine that fits nowhere waits, with an event saying why.
 */
export class Scheduler implements Reconciler {
  readonly name = "scheduler";
  readonly watches: Kind[] = ["Machine", "Node"];

  constructor(
    private readonly store: Store,
    private readonly events: EventRecorder,
  ) {}

  keysFor(event: WatchEvent): string[] {
    if (event.type === "DELETED" || event.object.kind !== "Machine") return [];
    const m = event.object as Machine;
    return !m.spec.node && m.spec.desiredState === "running" ? [m.metadata.name] : [];
  }

  async allKeys(): Promise<string[]> {
    return (await this.store.list<Machine>("Machine")).items.filter((m) => !m.spec.node && m.spec.desiredState === "running").map((m) => m.metadata.name);
  }

  async reconcile(name: string): Promise<Outcome> {
    const machine = await this.store.get<Machine>("Machine", name);
    if (!machine || machine.spec.node || machine.spec.desiredState !== "running") return;
    const nodes = (await this.store.list<PithNode>("Node")).items.filter((n) => isNodeLive(n));
    const used = allocations((await this.store.list<Machine>("Machine")).items);
    const fits = nodes
      .map((n) => {
        const u = used.get(n.metadata.name) ?? { memoryMiB: 0, vcpus: 0, machines: 0 };
        return { node: n, freeMemory: n.spec.capacity.memoryMiB - u.memoryMiB, freeVcpus: n.spec.capacity.vcpus - u.vcpus };
      })
      .filter((c) => c.freeMemory >= machine.spec.memoryMiB && c.freeVcpus >= machine.spec.vcpus)
      .sort((a, b) => b.freeMemory - a.freeMemory || a.node.metadata.name.localeCompare(b.node.metadata.name));
    const choice = fits[0];
    if (!choice) {
      const reason = nodes.length === 0 ? "no live node" : `no node has ${machine.spec.memoryMiB} MiB and ${machine.spec.vcpus} vCPU free`;
      if (machine.status.reason !== reason) {
        await writeBack(this.store, machine, { status: { ...machine.status, reason } });
        await this.events.record({ kind: "Machine", name }, "Warning", "FailedScheduling", reason);
      }
      return { requeueAfterMs: 2000 };
    }
    const node = choice.node.metadata.name;
    const { reason: _unscheduled, ...status } = machine.status;
    await writeBack(this.store, machine, { spec: { ...machine.spec, node }, status: { ...status, node } });
    await this.events.record({ kind: "Machine", name }, "Normal", "Scheduled", `placed on ${node}`);
  }
}
