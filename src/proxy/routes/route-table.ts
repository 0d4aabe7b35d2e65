import { apiSource } from "../../client/api-source.ts";
import type { PithClient } from "../../client/index.ts";
import { Informer, untilSynced } from "../../client/informer.ts";
import type { Machine, PithNode, Service } from "../../model/kinds.ts";
import { nodePlacement } from "../../model/node-placement.ts";
import { backendEndpoint } from "../../model/backend-address.ts";
import { type Backend, localhostService, normaliseHost, type Route, type RouteListener, type RouteSource } from "./route.ts";

export type { Backend, Route, RouteListener, RouteSource } from "./route.ts";

export interface RouteTableOptions {
  /** Told about a listener that threw and about a watch that ended with an error (default: console.error). */
  onError?: (error: unknown) => void;
}

/** The table's own route objects: updated in place, so a route held by the proxy stays current. */
interface TableRoute {
  readonly service: string;
  backends: readonly Backend[];
  minZero: boolean;
}

interface ServiceEntry {
  route: TableRoute;
  /** spec.hosts as lookup keys. */
  hosts: string[];
}

/**
 * Host name -> service -> ready machines, kept current by watching Services and Machines (pushed
 * by the control plane, never polled; a 410 relists and rebuilds). A machine is a backend only
 * while `status.phase === "ready"` and `spec.desiredState === "running"`: the controller sets
 * desiredState "stopped" before stopping one, so the proxy stops sending it requests first.
 *
 * A host routes to the service whose spec.hosts lists it (exact name, case-insensitive, port
 * ignored; if two services claim one, the name first in order wins); `<service>.localhost`
 * always routes to that service. A machine's backend URL is its first address, and only if it is
 * a literal loopback IP, or the address its node registered, and a port (backend-address.ts):
 * anything else is reported and not routed. Nodes are watched for those addresses, and so that a
 * machine on a node marked NotReady (its host is lost) is not routed to meanwhile.
 */
export class RouteTable implements RouteSource {
  readonly #client: PithClient;
  readonly #onError: (error: unknown) => void;
  readonly #listeners = new Set<RouteListener>();
  readonly #services = new Map<string, ServiceEntry>();
  readonly #hosts = new Map<string, TableRoute>();
  /** Ready backends by service, then machine name (also for services not seen yet). */
  readonly #backends = new Map<string, Map<string, Backend>>();
  /** The service each backend machine is filed under. */
  readonly #machineService = new Map<string, string>();
  /** Services whose route changed since the last flush; `#gone` those deleted. */
  readonly #changed = new Set<string>();
  readonly #gone = new Set<string>();
  /** Refused backends already reported (machine and URL), so a resync does not repeat them. */
  readonly #refused = new Set<string>();
  #hostsDirty = false;
  #started = false;
  /** Nodes by name, and the newest version of every machine (re-judged when its node changes). */
  #nodes: Informer<PithNode> | undefined;
  #machines: Informer<Machine> | undefined;
  #done: Promise<void> = Promise.resolve();

  constructor(client: PithClient, options: RouteTableOptions = {}) {
    this.#client = client;
    this.#onError = options.onError ?? ((error) => console.error("pith proxy: route table:", error));
  }

  /**
   * Lists Services and Machines into two informers, builds the table from them, then keeps it
   * current from their changes (their watches start from the lists' revisions). Resolves once the
   * table is built; the watches run until `signal` aborts (see `done`). Rejects if the initial
   * lists fail.
   */
  async start(signal: AbortSignal): Promise<void> {
    if (this.#started) throw new Error("RouteTable.start() was already called");
    this.#started = true;
    // A watch that fails for good stops the other one too: a half-current table is worse than a stale one reported.
    const stop = new AbortController();
    const watching = AbortSignal.any([signal, stop.signal]);
    const services = new Informer(apiSource(this.#client, "Service"), { onError: this.#onError });
    const machines = new Informer(apiSource(this.#client, "Machine"), { onError: this.#onError, indexes: { [BY_NODE]: (m) => (m.spec.node ? [m.spec.node] : []) } });
    const nodes = new Informer(apiSource(this.#client, "Node"), { onError: this.#onError });
    this.#nodes = nodes;
    this.#machines = machines;
    const serviceWatch = services.run(watching);
    const machineWatch = machines.run(watching);
    const nodeWatch = nodes.run(watching);
    const ended = Promise.all([serviceWatch, machineWatch, nodeWatch]);
    // Until all are listed, a failure (or the abort) fails the start.
    try {
      await untilSynced([services, machines, nodes], ended);
    } catch (error) {
      stop.abort();
      ended.catch(() => undefined);
      throw error;
    }
    // From the caches, in one batch: listeners see each route once, complete. Then their changes,
    // from the same tick, so none is missed (a relist arrives as changes too).
    this.#replaceServices(services.list(), false);
    this.#replaceMachines(machines.list());
    services.addHandler(
      {
        added: (service) => this.#onService(service),
        updated: (_old, service) => this.#onService(service),
        deleted: (service) => {
          this.#removeService(service.metadata.name);
          this.#flush();
        },
      },
      { replay: false },
    );
    machines.addHandler(
      {
        added: (machine) => this.#onMachine(machine),
        updated: (_old, machine) => this.#onMachine(machine),
        deleted: (machine) => {
          this.#removeBackend(machine.metadata.name);
          this.#flush();
        },
      },
      { replay: false },
    );
    nodes.addHandler(
      {
        added: (node) => this.#onNode(undefined, node),
        updated: (old, node) => this.#onNode(old, node),
        deleted: (node) => this.#onNode(node, undefined),
      },
      { replay: false },
    );
    this.#done = ended.then(
      () => undefined,
      (error: unknown) => {
        stop.abort();
        this.#onError(error);
        throw error;
      },
    );
    this.#done.catch(() => undefined); // reported through onError; `done` still rejects for whoever awaits it
  }

  /** Settles when the watches end: resolves after `signal` aborts, rejects if a watch failed for good. */
  get done(): Promise<void> {
    return this.#done;
  }

  lookup(host: string, _path: string): Route | undefined {
    const key = normaliseHost(host);
    const route = this.#hosts.get(key);
    if (route) return route;
    const service = localhostService(key);
    return service === undefined ? undefined : this.#services.get(service)?.route;
  }

  /** A service's route by name. */
  route(service: string): Route | undefined {
    return this.#services.get(service)?.route;
  }

  onChange(listener: RouteListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #onService(service: Service): void {
    this.#applyService(service);
    this.#flush();
  }

  #onMachine(machine: Machine): void {
    this.#applyMachine(machine);
    this.#flush();
  }

  /** A node's address or readiness changed: its machines are judged again (heartbeats change neither). */
  #onNode(old: PithNode | undefined, node: PithNode | undefined): void {
    const name = (node ?? old)!.metadata.name;
    if (old && node && old.spec.address === node.spec.address && nodePlacement(old) === nodePlacement(node)) return;
    for (const machine of this.#machines?.byIndex(BY_NODE, name) ?? []) this.#applyMachine(machine);
    this.#flush();
  }

  #replaceServices(items: Service[], flush = true): void {
    const names = new Set(items.map((s) => s.metadata.name));
    for (const name of [...this.#services.keys()]) if (!names.has(name)) this.#removeService(name);
    for (const item of items) this.#applyService(item);
    if (flush) this.#flush();
  }

  #replaceMachines(items: Machine[]): void {
    const names = new Set(items.map((m) => m.metadata.name));
    for (const name of [...this.#machineService.keys()]) if (!names.has(name)) this.#removeBackend(name);
    for (const item of items) this.#applyMachine(item);
    this.#flush();
  }

  #applyService(service: Service): void {
    const name = service.metadata.name;
    const minZero = service.spec.min === 0;
    const hosts = (service.spec.hosts ?? []).map(normaliseHost);
    const entry = this.#services.get(name);
    if (!entry) {
      this.#services.set(name, { route: { service: name, backends: [], minZero }, hosts });
      this.#gone.delete(name);
      this.#changed.add(name);
      this.#hostsDirty = true;
      return;
    }
    if (entry.route.minZero !== minZero) {
      entry.route.minZero = minZero;
      this.#changed.add(name);
    }
    if (entry.hosts.length !== hosts.length || entry.hosts.some((h, i) => h !== hosts[i])) {
      entry.hosts = hosts;
      this.#hostsDirty = true;
    }
  }

  #removeService(name: string): void {
    if (!this.#services.delete(name)) return;
    this.#gone.add(name);
    this.#changed.add(name);
    this.#hostsDirty = true;
  }

  #applyMachine(machine: Machine): void {
    const name = machine.metadata.name;
    const service = machine.spec.service;
    const node = machine.spec.node === undefined ? undefined : this.#nodes?.get(machine.spec.node);
    const routable = service && machine.spec.desiredState === "running" && machine.status?.phase === "ready" && nodePlacement(node) !== "lost";
    const url = routable ? this.#backendUrl(machine, node?.spec.address) : undefined;
    const filedUnder = this.#machineService.get(name);
    if (filedUnder !== undefined && (url === undefined || filedUnder !== service)) this.#removeBackend(name);
    if (url === undefined || !service) return;
    let backends = this.#backends.get(service);
    if (!backends) this.#backends.set(service, (backends = new Map()));
    if (backends.get(name)?.url.href === url.href) return; // unchanged: keep the object (and its inFlight)
    const nodeAddress = node?.spec.address;
    backends.set(name, { machine: name, url, ...(nodeAddress ? { nodeAddress } : {}), inFlight: 0 });
    this.#machineService.set(name, service);
    this.#changed.add(service);
  }

  /** A machine's first address as an http URL, or undefined if it has none a proxy may dial (said once). */
  #backendUrl(machine: Machine, nodeAddress: string | undefined): URL | undefined {
    const address = machine.status?.addresses?.[0];
    if (!address) return undefined;
    let url: URL;
    try {
      url = new URL(address.url);
    } catch {
      return undefined;
    }
    const endpoint = backendEndpoint(url, nodeAddress);
    if (!("refused" in endpoint)) return url;
    const report = `${machine.metadata.name} ${url.href}`;
    if (!this.#refused.has(report)) {
      this.#refused.add(report);
      this.#onError(new Error(`machine ${machine.metadata.name} is not routed: its status gives backend ${address.url}, and ${endpoint.refused}`));
    }
    return undefined;
  }

  #removeBackend(machine: string): void {
    const service = this.#machineService.get(machine);
    if (service === undefined) return;
    this.#machineService.delete(machine);
    const backends = this.#backends.get(service);
    if (!backends?.delete(machine)) return;
    if (backends.size === 0) this.#backends.delete(service);
    this.#changed.add(service);
  }

  /** Publishes the batch of changes: new backend arrays, the host index, then the listeners. */
  #flush(): void {
    if (this.#hostsDirty) this.#rebuildHosts();
    if (this.#changed.size === 0) return;
    const changed = [...this.#changed];
    const gone = new Set(this.#gone);
    this.#changed.clear();
    this.#gone.clear();
    for (const service of changed) {
      const entry = this.#services.get(service);
      if (entry) {
        const backends = this.#backends.get(service);
        entry.route.backends = backends ? [...backends.values()].sort(byMachine) : [];
      } else if (!gone.has(service)) {
        continue; // machines of a service not created yet: no route to announce
      }
      for (const listener of this.#listeners) {
        try {
          listener(service, entry?.route);
        } catch (error) {
          this.#onError(error);
        }
      }
    }
  }

  #rebuildHosts(): void {
    this.#hostsDirty = false;
    this.#hosts.clear();
    for (const name of [...this.#services.keys()].sort()) {
      const entry = this.#services.get(name);
      if (!entry) continue;
      for (const host of entry.hosts) if (!this.#hosts.has(host)) this.#hosts.set(host, entry.route);
    }
  }
}

/** The route table's machine index: by the node a machine is placed on. */
const BY_NODE = "node";

const byMachine = (a: Backend, b: Backend): number => (a.machine < b.machine ? -1 : a.machine > b.machine ? 1 : 0);


