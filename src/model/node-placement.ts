import type { Machine, PithNode } from "./kinds.ts";

/**
 * What a node is to the machines placed on it, decided in one place for the scheduler, the
 * service reconciler and node health:
 * - `available`: it runs its machines and may be given more (unless cordoned);
 * - `draining`: `pith drain` asked for its machines to move: they keep serving until their
 *   replacements elsewhere are ready, then they are stopped;
 * - `lost`: node health marked it NotReady (its heartbeats stopped): its machines are replaced
 *   elsewhere, and stopped when its agent comes back.
 * A node with no object is judged by nobody (no heartbeat to miss), so it counts as available.
 */
export type NodePlacement = "available" | "draining" | "lost";

export function nodePlacement(node: PithNode | undefined): NodePlacement {
  if (node?.status.ready === false) return "lost";
  return node?.spec.drain ? "draining" : "available";
}

/** Whether the scheduler may put new machines on this node (it must also be live: isNodeLive). */
export const acceptsMachines = (node: PithNode): boolean => nodePlacement(node) === "available" && node.spec.unschedulable !== true;

/** A placed machine whose node is draining or lost: it is to be replaced on another node. */
export function isDisplaced(machine: Machine, nodeNamed: (name: string) => PithNode | undefined): boolean {
  return machine.spec.node !== undefined && nodePlacement(nodeNamed(machine.spec.node)) !== "available";
}
