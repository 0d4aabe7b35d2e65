import type { ServiceLoad } from "../exchange/service-state.ts";
import { backendEndpoint, type BackendEndpoint } from "../../model/backend-address.ts";
import { localhostService, normaliseHost, type Route } from "../routes/route.ts";
import { INITIAL_POOL, poolBackend, SLOTS_PER_BACKEND, type SlotState } from "./config.ts";
import { isBackendName, isEndpoint, isHostName, isSlotKey } from "./runtime-values.ts";

/** What HAProxy should have, or has: `pith_bN/sK` -> `address:port`, and host -> `pith_bN` in the map. */
export interface HaproxyState {
  slots: Map<string, string>;
  map: Map<string, string>;
}

/** Everything HAProxy's files carry at a start or reload: the pool, its occupied slots and the map. */
export interface HaproxyFilesState {
  poolSize: number;
  /** Occupied slots by backend name, then slot index. */
  slots: Map<string, Map<number, SlotState>>;
  map: Map<string, string>;
}

export interface SlotPlanOptions {
  /** The service a host routes to now (the route source's answer): a host is HAProxy's only while this agrees. */
  routedService: (host: string) => string | undefined;
  /** Something the plan leaves out, said once per `key` (a backend off the loopback, a host name HAProxy cannot take). */
  warn: (key: string, message: string) => void;
}

interface ServiceSlots {
  /** Pool backend, once the service has one. */
  backend: string | undefined;
  /** Machine -> its slot and endpoint. */
  machines: Map<string, SlotState & { slot: number }>;
}

/**
 * Which service gets which pool backend, which machine which server slot of it, and which hosts
 * map to which backend; and, against what HAProxy was last told, the runtime API commands that
 * bring it there. Pure: no process, no socket, no clock. A host maps to its service's backend
 * only while that service has a ready machine, so every other request goes to Pith's fallback.
 */
export class SlotPlan {
  readonly #options: SlotPlanOptions;
  readonly #services = new Map<string, ServiceSlots>();
  /** Host key -> service, learned or `<service>.localhost`. */
  readonly #hosts = new Map<string, string>();
  #poolSize = INITIAL_POOL;
  readonly #freeBackends: string[] = [];
  /** Backends of removed services: free once HAProxy no longer maps a host to them. */
  readonly #releasing: string[] = [];
  #applied: HaproxyState = { slots: new Map(), map: new Map() };

  constructor(options: SlotPlanOptions) {
    this.#options = options;
    for (let i = 0; i < this.#poolSize; i++) this.#freeBackends.push(poolBackend(i));
  }

  /** A service's route changed (undefined: the service is gone). */
  routeChanged(service: string, route: Route | undefined): void {
    if (route) {
      this.#place(service, route);
      return;
    }
    const slots = this.#services.get(service);
    this.#services.delete(service);
    if (slots?.backend) this.#releasing.push(slots.backend);
    for (const [host, owner] of this.#hosts) if (owner === service) this.#hosts.delete(host);
  }

  /** A request for `rawHost` was routed to `route` by Pith: the host becomes HAProxy's too. Returns whether anything changed. */
  learn(rawHost: string, route: Route): boolean {
    const key = normaliseHost(rawHost);
    if (this.#hosts.get(key) === route.service) return false;
    // HAProxy's key is the Host header lower-cased up to the first ':'; other forms (and anything
    // that is not a plain host name, which could smuggle a command into the runtime API) stay with the fallback.
    if (!isHostName(key)) return false;
    if (!this.#services.has(route.service)) this.#place(route.service, route);
    this.#hosts.set(key, route.service);
    return true;
  }

  /** Some service has no backend and none is free: the pool must grow (a new config and a reload). */
  get needsGrowth(): boolean {
    return this.#freeBackends.length === 0 && [...this.#services.values()].some((s) => !s.backend);
  }

  /** Doubles the pool until every service and one more fit, and gives each service without a backend one. */
  grow(): void {
    while (this.#poolSize < this.#services.size + 1) {
      for (let i = this.#poolSize; i < this.#poolSize * 2; i++) this.#freeBackends.push(poolBackend(i));
      this.#poolSize *= 2;
    }
    for (const slots of this.#services.values()) slots.backend ??= this.#freeBackends.shift();
  }

  /** What HAProxy should have: occupied slots, and the map (hosts of services with a ready machine). */
  desired(): HaproxyState {
    const slots = new Map<string, string>();
    // The last gate before strings become runtime API commands: every part passes its grammar.
    for (const { backend, machines } of this.#services.values()) {
      if (!backend) continue;
      for (const m of machines.values()) {
        const key = `${backend}/s${m.slot}`;
        if (isSlotKey(key) && isEndpoint(m.address, m.port)) slots.set(key, `${m.address}:${m.port}`);
      }
    }
    const map = new Map<string, string>();
    for (const [host, service] of [...this.#hosts]) {
      // A host is HAProxy's only while the route source still routes it to that service.
      if (this.#options.routedService(host) !== service) {
        if (localhostService(host) !== service) this.#hosts.delete(host);
        continue;
      }
      const slotted = this.#services.get(service);
      if (slotted?.backend && slotted.machines.size > 0 && isHostName(host) && isBackendName(slotted.backend)) map.set(host, slotted.backend);
    }
    return { slots, map };
  }

  /**
   * The runtime API commands from what HAProxy has to `desired`, in three batches sent in order:
   * slots filled before a host points at them; hosts moved away before their slots empty.
   */
  changes(desired: HaproxyState, mapPath: string): { fill: string[]; map: string[]; drain: string[] } {
    const applied = this.#applied;
    const fill: string[] = [];
    for (const [key, endpoint] of desired.slots) {
      if (applied.slots.get(key) === endpoint) continue;
      const colon = endpoint.lastIndexOf(":");
      fill.push(`set server ${key} addr ${endpoint.slice(0, colon)} port ${endpoint.slice(colon + 1)}`, `set server ${key} state ready`);
    }
    const map: string[] = [];
    for (const [host, backend] of desired.map) {
      const before = applied.map.get(host);
      if (before === backend) continue;
      map.push(`${before === undefined ? "add" : "set"} map ${mapPath} ${host} ${backend}`);
    }
    for (const host of applied.map.keys()) if (!desired.map.has(host)) map.push(`del map ${mapPath} ${host}`);
    const drain: string[] = [];
    for (const key of applied.slots.keys()) if (!desired.slots.has(key)) drain.push(`set server ${key} state maint`);
    return { fill, map, drain };
  }

  /** HAProxy was sent `state`'s changes: it has it now, and the backends of removed services are free again. */
  applied(state: HaproxyState): void {
    this.#applied = state;
    this.#freeBackends.push(...this.#releasing.splice(0));
  }

  /** The whole wanted state, for HAProxy's files; HAProxy has it from the start or reload that reads them. */
  filesState(): HaproxyFilesState {
    const desired = this.desired();
    const slots = new Map<string, Map<number, SlotState>>();
    for (const { backend, machines } of this.#services.values()) {
      if (!backend) continue;
      slots.set(backend, new Map([...machines.values()].map((m) => [m.slot, { address: m.address, port: m.port }])));
    }
    this.#applied = desired;
    return { poolSize: this.#poolSize, slots, map: desired.map };
  }

  /** What HAProxy has been told (for tests). */
  get appliedState(): HaproxyState {
    return { slots: new Map(this.#applied.slots), map: new Map(this.#applied.map) };
  }

  /**
   * Per-service load: HAProxy's current sessions on each service's backend added to the
   * fallback's own counts (requests it serves or holds).
   */
  load(fallback: Record<string, ServiceLoad>, sessions: ReadonlyMap<string, number>): Record<string, ServiceLoad> {
    const load: Record<string, ServiceLoad> = {};
    for (const [service, own] of Object.entries(fallback)) load[service] = { ...own };
    for (const [service, slots] of this.#services) {
      if (!slots.backend) continue;
      const entry = (load[service] ??= { inFlight: 0, waiting: 0, backends: slots.machines.size });
      entry.inFlight += sessions.get(slots.backend) ?? 0;
      entry.backends = Math.max(entry.backends, slots.machines.size);
    }
    return load;
  }

  /** Gives the service a backend (if one is free) and its ready machines slots, keeping the slots of machines that stay. */
  #place(service: string, route: Route): void {
    const warn = this.#options.warn;
    let slots = this.#services.get(service);
    if (!slots) {
      this.#services.set(service, (slots = { backend: this.#freeBackends.shift(), machines: new Map() }));
      const localhost = `${service}.localhost`;
      if (isHostName(localhost)) this.#hosts.set(localhost, service);
      else warn(`host:${localhost}`, `service ${JSON.stringify(service)} makes no valid host name: ${JSON.stringify(localhost)} stays with Pith's proxy`);
    }
    // A backend the route source should never have given (backend-address.ts) gets no slot.
    const current = new Map<string, BackendEndpoint>();
    for (const backend of route.backends) {
      const endpoint = backendEndpoint(backend.url, backend.nodeAddress);
      if ("refused" in endpoint) warn(`backend:${backend.machine}:${backend.url.href}`, `machine ${backend.machine} gets no HAProxy slot: ${endpoint.refused}`);
      else current.set(backend.machine, endpoint);
    }
    for (const machine of [...slots.machines.keys()]) if (!current.has(machine)) slots.machines.delete(machine);
    const used = new Set([...slots.machines.values()].map((m) => m.slot));
    for (const [machine, { address, port }] of current) {
      const existing = slots.machines.get(machine);
      if (existing) {
        existing.address = address;
        existing.port = port;
        continue;
      }
      let slot = 0;
      while (used.has(slot)) slot++;
      if (slot >= SLOTS_PER_BACKEND) {
        warn(`slots:${service}`, `service ${service} has more than ${SLOTS_PER_BACKEND} ready machines: HAProxy sends the rest no requests`);
        continue;
      }
      used.add(slot);
      slots.machines.set(machine, { slot, address, port });
    }
  }
}
