import type { Informer } from "../client/informer.ts";
import type { Machine } from "../model/kinds.ts";

export interface Allocation {
  memoryMiB: number;
  vcpus: number;
  machines: number;
}

/** What a machine claims on its node: nothing until placed, nothing once stopped or failed. */
function claim(m: Machine): { node: string; memoryMiB: number; vcpus: number } | undefined {
  if (!m.spec.node || m.status.phase === "stopped" || m.status.phase === "failed") return undefined;
  return { node: m.spec.node, memoryMiB: m.spec.memoryMiB, vcpus: m.spec.vcpus };
}

/** What the machines placed on each node claim. */
export function allocations(machines: Machine[]): Map<string, Allocation> {
  const byNode = new Map<string, Allocation>();
  for (const m of machines) {
    const c = claim(m);
    if (!c) continue;
    const a = byNode.get(c.node) ?? { memoryMiB: 0, vcpus: 0, machines: 0 };
    a.memoryMiB += c.memoryMiB;
    a.vcpus += c.vcpus;
    a.machines += 1;
    byNode.set(c.node, a);
  }
  return byNode;
}

/**
 * Per-node allocations kept current from the machine cache's changes: each change moves one
 * machine's claim, so a placement reads its node's totals without looking at every machine.
 */
export class AllocationTracker {
  readonly #byNode = new Map<string, Allocation>();

  constructor(machines: Informer<Machine>) {
    machines.addHandler({
      added: (m) => this.#move(undefined, m),
      updated: (old, m) => this.#move(old, m),
      deleted: (m) => this.#move(m, undefined),
    });
  }

  of(node: string): Allocation {
    return this.#byNode.get(node) ?? { memoryMiB: 0, vcpus: 0, machines: 0 };
  }

  #move(before: Machine | undefined, after: Machine | undefined): void {
    const was = before && claim(before);
    const is = after && claim(after);
    if (was) this.#add(was.node, -was.memoryMiB, -was.vcpus, -1);
    if (is) this.#add(is.node, is.memoryMiB, is.vcpus, 1);
  }

  #add(node: string, memoryMiB: number, vcpus: number, machines: number): void {
    const a = this.#byNode.get(node) ?? { memoryMiB: 0, vcpus: 0, machines: 0 };
    a.memoryMiB += memoryMiB;
    a.vcpus += vcpus;
    a.machines += machines;
    if (a.machines === 0) this.#byNode.delete(node);
    else this.#byNode.set(node, a);
  }
}
