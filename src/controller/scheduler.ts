import type { Kind, WatchEvent } from "../model/resource.ts";
import type { Machine, PithNode, Volume } from "../model/kinds.ts";
import { type Store, StoreError } from "../store/store.ts";
import { AllocationTracker } from "./allocations.ts";
import type { EventRecorder } from "./event-recorder.ts";
import { BY_SERVICE, type ControllerInformers, informersFor, isUnscheduled, UNSCHEDULED } from "./informers.ts";
import { SERVICE_LABEL } from "../model/labels.ts";
import { acceptsMachines } from "../model/node-placement.ts";
import { changedCopy, writeBack } from "./object-updates.ts";
import type { Outcome, Reconciler } from "./runner.ts";

export { allocations } from "./allocations.ts";

/** A node whose agent has not reported for this long is not given new machines. */
export const NODE_STALE_MS = 20_000;

/**
 * The key the runner queues: a pass that places every machine waiting for a node. (Any other key
 * is one machine's name, placed alone; no object name has parentheses.)
 */
export const PLACEMENT_KEY = "(pending)";

/** The same promise, marked handled now: its rejection is seen later, by whoever awaits it (or by nobody, after an error). */
const handled = <T>(promise: Promise<T>): Promise<T> => (promise.catch(() => {}), promise);

export const isNodeLive = (node: PithNode, now = Date.now()): boolean =>
  node.status.ready === true && node.status.heartbeatAt !== undefined && now - Date.parse(node.status.heartbeatAt) < NODE_STALE_MS;

/**
 * Places each unscheduled machine on a live, uncordoned node that fits both its memory and its
 * vCPUs: the one holding the fewest machines of its service (so a service survives losing a host:
 * no two on one node while another has room), then the one with the most free memory. A machine
 * that fits nowhere waits, with an event saying why.
 *
 * One pass (PLACEMENT_KEY) places every waiting machine, oldest first, reading node
 * allocations the cache keeps current: a thousand new machines cost one or a few passes, and
 * each placement costs its write, not a look at every machine.
 */
export class Scheduler implements Reconciler {
  readonly name = "scheduler";
  readonly watches: Kind[] = ["Machine", "Node"];
  private readonly allocations: AllocationTracker;

  constructor(
    private readonly store: Store,
    private readonly events: EventRecorder,
    private readonly informers: ControllerInformers = informersFor(store),
  ) {
    this.allocations = new AllocationTracker(informers.machines);
  }

  keysFor(event: WatchEvent): string[] {
    if (event.type === "DELETED" || event.object.kind !== "Machine") return [];
    return isUnscheduled(event.object as Machine) ? [PLACEMENT_KEY] : [];
  }

  async allKeys(): Promise<string[]> {
    await this.informers.start();
    return this.informers.machines.byIndex(UNSCHEDULED, UNSCHEDULED).length > 0 ? [PLACEMENT_KEY] : [];
  }

  async reconcile(key: string): Promise<Outcome> {
    await this.informers.start();
    const machines = this.informers.machines;
    const waiting = key === PLACEMENT_KEY ? machines.byIndex(UNSCHEDULED, UNSCHEDULED) : [machines.get(key)].filter((m) => m !== undefined);
    const pending = waiting.sort(
      (a, b) => a.metadata.createdAt.localeCompare(b.metadata.createdAt) || a.metadata.name.localeCompare(b.metadata.name),
    );
    if (pending.length === 0) return;
    const live = this.informers.nodes.list().filter((n) => isNodeLive(n));
    const nodes = live.filter(acceptsMachines).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const nowhere = live.length === 0 ? "no live node" : nodes.length === 0 ? "every live node is cordoned or draining" : undefined;
    let unplaced = false;
    // Placements are decided first, each counting those before it (claims), then written
    // together: one writeMany (for SQLite one commit) and their events after it, together too.
    // Events are marked handled at once, so a pass that throws midway leaves no unhandled rejection.
    const claims = new PassClaims();
    const recorded: Promise<void>[] = [];
    for (const queued of pending) {
      // The newest state: a write earlier in this pass (or during its awaits) may have changed it.
      const machine = machines.get(queued.metadata.name);
      if (!machine || !isUnscheduled(machine)) continue;
      try {
        if (!(await this.place(machine, nodes, nowhere, claims, recorded))) unplaced = true;
      } catch (e) {
        // Someone else changed or removed it meanwhile: its change queues another pass.
        if (e instanceof StoreError && (e.code === "Conflict" || e.code === "NotFound")) continue;
        throw e;
      }
    }
    const results = await this.store.writeMany(claims.placements.map(({ machine, node }) => {
      const { reason: _unscheduled, ...status } = machine.status;
      return { update: changedCopy(machine, { spec: { ...machine.spec, node }, status: { ...status, node } }) };
    }));
    for (const [i, result] of results.entries()) {
      const { machine, node } = claims.placements[i]!;
      if ("object" in result) recorded.push(handled(this.events.record({ kind: "Machine", name: machine.metadata.name }, "Normal", "Scheduled", `placed on ${node}`)));
      // Someone else changed or removed it meanwhile: its change queues another pass.
      else if (result.error.code !== "Conflict" && result.error.code !== "NotFound") throw result.error;
    }
    await Promise.all(recorded);
    return unplaced ? { requeueAfterMs: 2000 } : undefined;
  }

  /** Decides where one machine goes (written by the pass); false if it fits nowhere (said once per reason, on the machine). */
  private async place(machine: Machine, nodes: PithNode[], nowhere: string | undefined, claims: PassClaims, recorded: Promise<void>[]): Promise<boolean> {
    const name = machine.metadata.name;
    const service = machine.metadata.labels[SERVICE_LABEL];
    const siblings = claims.siblingsOf(service, () => this.siblingsByNode(machine));
    // A volume's file lives on one node's disk: a machine holding it can run only there.
    const pinned = await this.volumeNode(machine);
    const eligible = pinned.node === undefined ? nodes : nodes.filter((n) => n.metadata.name === pinned.node);
    let choice: { node: string; siblings: number; warm: boolean; takenOver: number; freeMemory: number } | undefined;
    for (const n of pinned.conflict ? [] : eligible) {
      const used = this.allocations.of(n.metadata.name);
      const claimed = claims.on(n.metadata.name);
      const warm = warmLeft(machine, service, n, claims) > 0;
      // Warm machines hold memory no Machine object claims; one this machine takes over is its own.
      const warmHeld = Math.max(0, (n.status.warmMemoryMiB ?? 0) - claims.warmTakenOn(n.metadata.name));
      const takenOver = warm ? Math.min(warmHeld, machine.spec.memoryMiB) : 0;
      const freeMemory = n.spec.capacity.memoryMiB - used.memoryMiB - claimed.memoryMiB - warmHeld + takenOver;
      const freeVcpus = n.spec.capacity.vcpus - used.vcpus - claimed.vcpus;
      if (freeMemory < machine.spec.memoryMiB || freeVcpus < machine.spec.vcpus) continue;
      const candidate = { node: n.metadata.name, siblings: siblings.get(n.metadata.name) ?? 0, warm, takenOver, freeMemory };
      // Fewest of its service, then a node holding a warm machine for it, then most free memory;
      // on a tie, the first by name (nodes are sorted).
      if (!choice || isBetter(candidate, choice)) choice = candidate;
    }
    if (!choice) {
      const reason =
        pinned.conflict ??
        nowhere ??
        (pinned.node === undefined
          ? `no node has ${machine.spec.memoryMiB} MiB and ${machine.spec.vcpus} vCPU free`
          : `its volume ${pinned.volume} is on node ${pinned.node}, which is not ready, is cordoned or draining, or has no ${machine.spec.memoryMiB} MiB and ${machine.spec.vcpus} vCPU free`);
      if (machine.status.reason !== reason) {
        await writeBack(this.store, machine, { status: { ...machine.status, reason } });
        recorded.push(handled(this.events.record({ kind: "Machine", name }, "Warning", "FailedScheduling", reason)));
      }
      return false;
    }
    claims.add(machine, choice.node, service, choice.takenOver);
    return true;
  }

  /** The node holding the machine's volumes' files, if one does yet (a new volume is made where the machine lands). */
  private async volumeNode(machine: Machine): Promise<{ node?: string; volume?: string; conflict?: string }> {
    let found: { node: string; volume: string } | undefined;
    for (const { volume } of machine.spec.volumes ?? []) {
      const v = await this.store.get<Volume>("Volume", volume);
      const node = v?.spec.node ?? v?.status?.node;
      if (node === undefined) continue;
      if (found && found.node !== node) return { conflict: `its volumes are on different nodes (${found.volume} on ${found.node}, ${volume} on ${node})` };
      found = { node, volume };
    }
    return found ?? {};
  }

  /** How many running machines of the same service each node holds (none for a machine without one). */
  private siblingsByNode(machine: Machine): Map<string, number> {
    const counts = new Map<string, number>();
    const service = machine.metadata.labels[SERVICE_LABEL];
    if (!service) return counts;
    for (const m of this.informers.machines.byIndex(BY_SERVICE, service)) {
      if (!m.spec.node || m.spec.desiredState !== "running" || m.status.phase === "stopped" || m.status.phase === "failed") continue;
      counts.set(m.spec.node, (counts.get(m.spec.node) ?? 0) + 1);
    }
    return counts;
  }
}

/** Placement order: fewest machines of its service (spread), then a warm machine to take, then most free memory. */
function isBetter(candidate: { siblings: number; warm: boolean; freeMemory: number }, choice: { siblings: number; warm: boolean; freeMemory: number }): boolean {
  if (candidate.siblings !== choice.siblings) return candidate.siblings < choice.siblings;
  if (candidate.warm !== choice.warm) return candidate.warm;
  return candidate.freeMemory > choice.freeMemory;
}

/**
 * Warm machines node `n` still holds for the machine's service, as its agent last reported them
 * (Node status.warm, each heartbeat), less those this pass has placed there: only a machine in
 * snapshot mode takes one (src/snapshot/warm-pool.ts), in tens of ms instead of a restore.
 */
function warmLeft(machine: Machine, service: string | undefined, n: PithNode, claims: PassClaims): number {
  if (machine.spec.startMode !== "snapshot" || service === undefined) return 0;
  return (n.status.warm?.[service] ?? 0) - claims.placedThisPass(service, n.metadata.name);
}

/**
 * The placements a pass has decided but not written yet, and what they claim: the cache's
 * allocations and sibling counts do not include them until the pass writes them.
 */
class PassClaims {
  readonly placements: { machine: Machine; node: string }[] = [];
  readonly #byNode = new Map<string, { memoryMiB: number; vcpus: number }>();
  /** Per service, its machines per node: counted from the cache once per pass, then kept by add(). */
  readonly #siblings = new Map<string, Map<string, number>>();

  /** Per service, this pass's placements per node. */
  readonly #placed = new Map<string, Map<string, number>>();

  /** Per node, the warm machines' memory this pass's placements take over. */
  readonly #warmTaken = new Map<string, number>();

  add(machine: Machine, node: string, service: string | undefined, warmTakenMiB = 0): void {
    this.placements.push({ machine, node });
    if (warmTakenMiB > 0) this.#warmTaken.set(node, this.warmTakenOn(node) + warmTakenMiB);
    if (service !== undefined) {
      const placed = this.#placed.get(service) ?? new Map<string, number>();
      placed.set(node, (placed.get(node) ?? 0) + 1);
      this.#placed.set(service, placed);
    }
    const claimed = this.on(node);
    this.#byNode.set(node, { memoryMiB: claimed.memoryMiB + machine.spec.memoryMiB, vcpus: claimed.vcpus + machine.spec.vcpus });
    const counts = service === undefined ? undefined : this.#siblings.get(service);
    if (counts) counts.set(node, (counts.get(node) ?? 0) + 1);
  }

  warmTakenOn(node: string): number {
    return this.#warmTaken.get(node) ?? 0;
  }

  placedThisPass(service: string, node: string): number {
    return this.#placed.get(service)?.get(node) ?? 0;
  }

  on(node: string): { memoryMiB: number; vcpus: number } {
    return this.#byNode.get(node) ?? { memoryMiB: 0, vcpus: 0 };
  }

  /** The service's machines per node, this pass's placements included (`count` reads the cache, once per service). */
  siblingsOf(service: string | undefined, count: () => Map<string, number>): Map<string, number> {
    if (service === undefined) return count();
    let counts = this.#siblings.get(service);
    if (!counts) this.#siblings.set(service, (counts = count()));
    return counts;
  }
}
