import type { TestContext } from "node:test";
import type { Image, Machine, MachinePhase, MachineStatus, PithEvent, PithNode, Service, ServiceSpec } from "../model/kinds.ts";
import { API_VERSION, type Kind, type Resource, type WatchEvent } from "../model/resource.ts";
import { SqliteStore } from "../store/sqlite/sqlite-store.ts";
import type { Store } from "../store/store.ts";
import { EventRecorder } from "./event-recorder.ts";
import { NodeHealth } from "./node-health.ts";
import { writeBack } from "./object-updates.ts";
import type { Outcome } from "./runner.ts";
import { Scheduler } from "./scheduler.ts";
import { SERVICE_LABEL } from "../model/labels.ts";
import { LoadBoard } from "./load-board.ts";
import { ServiceReconciler } from "./service-reconciler.ts";

/** A clock that moves only when a test says so. */
export class ManualClock {
  constructor(public ms = Date.parse("2026-01-01T00:00:00Z")) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
  iso(): string {
    return new Date(this.ms).toISOString();
  }
}

/** A digest of the store's format, made from a short tag so tests read well. */
export const digestOf = (tag: string): string => `sha256:${tag.padEnd(64, "0")}`;

/**
 * The controllers over an in-memory store, with nothing else running: a test puts objects in
 * the store, runs a reconcile, and reads back what it wrote. It also plays the agents' part
 * (placing machines, reporting their phases, deleting stopped ones), so every step is the test's.
 *
 * Construction lives only here, so a change to how controllers are built touches one place.
 */
export class ControllerWorld {
  readonly clock = new ManualClock();
  /** Where the test reports a service's load, as a proxy would. */
  readonly load = new LoadBoard();
  private readonly services: ServiceReconciler;
  private readonly scheduler: Scheduler;
  private readonly health: NodeHealth;

  /** `store`: one a test already runs (e.g. a test server's); by default a new in-memory one, closed after the test. */
  private constructor(readonly store: Store) {
    const recorder = new EventRecorder(store, { store });
    this.services = new ServiceReconciler(store, recorder, this.load, this.clock.now);
    this.scheduler = new Scheduler(store, recorder);
    this.health = new NodeHealth(store, recorder, this.clock.now);
  }

  static create(t: TestContext, store?: Store): ControllerWorld {
    const world = new ControllerWorld(store ?? SqliteStore.open(":memory:"));
    if (!store) t.after(() => world.store.close());
    return world;
  }

  reconcileService(name: string): Promise<Outcome> {
    return this.services.reconcile(name);
  }

  schedule(machine: string): Promise<Outcome> {
    return this.scheduler.reconcile(machine);
  }

  checkNodes(): Promise<Outcome> {
    return this.health.reconcile();
  }

  /** An Image object for `tag`'s digest (64 MiB, 1 vCPU unless told). */
  async image(tag: string, shape: { memoryMiB?: number; vcpus?: number } = {}): Promise<string> {
    const digest = digestOf(tag);
    await this.store.create<Image>({
      apiVersion: API_VERSION,
      kind: "Image",
      metadata: { name: `img-${tag}` },
      spec: { digest, runtime: "native", memoryMiB: shape.memoryMiB ?? 64, vcpus: shape.vcpus ?? 1, listen: [], egress: [], storedBytes: 0 },
      status: {},
    });
    return digest;
  }

  /** Creates the service, or replaces its spec. */
  async applyService(name: string, spec: ServiceSpec): Promise<void> {
    const existing = await this.store.get<Service>("Service", name);
    if (existing) await writeBack(this.store, existing, { spec });
    else await this.store.create<Service>({ apiVersion: API_VERSION, kind: "Service", metadata: { name }, spec, status: {} });
  }

  async service(name: string): Promise<Service> {
    const service = await this.store.get<Service>("Service", name);
    if (!service) throw new Error(`no service ${name}`);
    return service;
  }

  async machines(service?: string): Promise<Machine[]> {
    return (await this.store.list<Machine>("Machine", service ? { labels: { [SERVICE_LABEL]: service } } : {})).items;
  }

  async machine(name: string): Promise<Machine> {
    const machine = await this.store.get<Machine>("Machine", name);
    if (!machine) throw new Error(`no machine ${name}`);
    return machine;
  }

  /** Events recorded with this reason, oldest first. */
  async events(reason: string): Promise<PithEvent[]> {
    return (await this.store.list<PithEvent>("Event")).items.filter((e) => e.spec.reason === reason).sort((a, b) => a.metadata.resourceVersion.localeCompare(b.metadata.resourceVersion, undefined, { numeric: true }));
  }

  /** A node as its agent registers it; `heartbeatAgoMs` back from the test's clock. */
  async node(name: string, capacity: { memoryMiB: number; vcpus: number }, status: { ready?: boolean; heartbeatAgoMs?: number; warm?: Record<string, number>; warmMemoryMiB?: number } = {}): Promise<void> {
    await this.store.create<PithNode>({
      apiVersion: API_VERSION,
      kind: "Node",
      metadata: { name },
      spec: { capacity, accelerator: "tcg" },
      status: { ready: status.ready ?? true, heartbeatAt: new Date(this.clock.now() - (status.heartbeatAgoMs ?? 0)).toISOString(), ...(status.warm ? { warm: status.warm } : {}), ...(status.warmMemoryMiB ? { warmMemoryMiB: status.warmMemoryMiB } : {}) },
    });
  }

  /** A machine placed by hand (or left unplaced without `node`), as the service controller makes them. */
  async placedMachine(name: string, shape: { memoryMiB: number; vcpus?: number; node?: string; phase?: MachinePhase }): Promise<void> {
    await this.store.create<Machine>({
      apiVersion: API_VERSION,
      kind: "Machine",
      metadata: { name },
      spec: { image: digestOf("m"), memoryMiB: shape.memoryMiB, vcpus: shape.vcpus ?? 1, desiredState: "running", ...(shape.node ? { node: shape.node } : {}) },
      status: { phase: shape.phase ?? "pending" },
    });
  }

  // The agents' part.

  /** Places every unplaced machine that should run on `node`, as the scheduler would. */
  async placeAll(node = "n1"): Promise<void> {
    for (const m of await this.machines()) {
      if (!m.spec.node && m.spec.desiredState === "running") await writeBack(this.store, m, { spec: { ...m.spec, node } });
    }
  }

  /** Reports a phase for a machine, as its agent would (ready ones get readyAt from the clock). */
  async report(name: string, phase: MachinePhase, extra: Partial<MachineStatus> = {}): Promise<void> {
    const m = await this.machine(name);
    await writeBack(this.store, m, { status: { ...m.status, phase, ...(phase === "ready" ? { readyAt: this.clock.iso() } : {}), ...extra } });
  }

  /** Finishes every stop the controller asked for: the agent stops the machine and deletes its object. */
  async finishStops(): Promise<void> {
    for (const m of await this.machines()) if (m.spec.desiredState === "stopped") await this.store.delete("Machine", m.metadata.name);
  }
}

/**
 * Every change to objects of a kind from the moment it is made, so a test can wait for a state
 * it caused (or that happened just before it started waiting) without polling or sleeping.
 */
export class ChangeLog<R extends Resource> {
  readonly events: (WatchEvent<R> & { resourceVersion: string })[] = [];
  private readonly waiters = new Set<() => void>();
  private unwatch: () => void = () => {};

  static async start<R extends Resource>(t: TestContext, store: Store, kind: R["kind"]): Promise<ChangeLog<R>> {
    const log = new ChangeLog<R>();
    log.unwatch = await store.watch(kind, await store.revision(), (event) => {
      log.events.push(event as WatchEvent<R> & { resourceVersion: string });
      for (const wake of log.waiters) wake();
    });
    t.after(() => log.unwatch());
    return log;
  }

  /** The first change so far, or to come, that `match` accepts (its value), within `timeoutMs`. */
  until<T>(match: (event: WatchEvent<R>, index: number) => T | undefined, what: string, timeoutMs = 5000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let checked = 0;
      const check = () => {
        for (; checked < this.events.length; checked++) {
          const value = match(this.events[checked]!, checked);
          if (value !== undefined) return finish(() => resolve(value));
        }
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`timed out after ${timeoutMs} ms waiting until ${what}; changes seen:\n${this.describe()}`))), timeoutMs);
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      this.waiters.add(check);
      check();
    });
  }

  private describe(): string {
    return this.events.map((e) => `  ${e.resourceVersion} ${e.type} ${e.object.metadata.name} ${JSON.stringify(e.object.status)}`).join("\n");
  }
}
