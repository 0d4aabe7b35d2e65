import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { userError } from "../../shared/errors.ts";
import { isAlive } from "../../shared/file-lock.ts";
import { freeLoopbackPort } from "../../shared/free-port.ts";
import { backendEndpoint, type BackendEndpoint } from "../backend-address.ts";
import { localhostService, normaliseHost, type Route, type RouteSource } from "../route.ts";
import type { ServiceLoad } from "../service-state.ts";
import { FALLBACK_BACKEND, haproxyConfig, INITIAL_POOL, mapFile, poolBackend, SLOTS_PER_BACKEND, type SlotState } from "./config.ts";
import { backendSessions, RuntimeApi, runtimeErrors } from "./runtime-api.ts";
import { isBackendName, isEndpoint, isHostName, isSlotKey } from "./runtime-values.ts";

/** How often in-flight counts are read from HAProxy (`show stat`): the load reports average these. */
const STATS_MS = 100;
/** How often learned hosts are checked against the route source: a host moving between services fires no route change. */
const SWEEP_MS = 1000;
const START_LIMIT_MS = 10_000;
/** A reload that has not produced a new worker by then is asked for again. */
const RELOAD_RESIGNAL_MS = 1_000;
/** How long a reload waits for the old worker to go before it calls the new routes applied. */
const OLD_WORKER_WAIT_MS = 3_000;

/** The haproxy binary, or a user error saying how to install it. */
export function findHaproxy(): string {
  if (existsSync("/usr/sbin/haproxy")) return "/usr/sbin/haproxy";
  const found = spawnSync("sh", ["-c", "command -v haproxy"], { encoding: "utf8" });
  const path = found.stdout.trim();
  if (found.status === 0 && path) return path;
  throw userError("HAPROXY_MISSING", "the haproxy proxy engine needs HAProxy 2.6, and haproxy is not installed", "install it with apt-get install haproxy, or use --engine node");
}

export interface HaproxyEngineOptions {
  routes: RouteSource;
  onError: (error: unknown) => void;
  /** HAProxy worker threads (default: HAProxy's own, one per CPU). */
  threads?: number;
  haproxy?: string;
}

interface ServiceSlots {
  /** Pool backend, once the service has one. */
  backend: string | undefined;
  /** Machine -> its slot and endpoint. */
  machines: Map<string, SlotState & { slot: number }>;
}

/**
 * HAProxy as Pith's data path. Pith keeps the routing decisions: the same RouteSource as the node
 * proxy pushes route changes, and they are applied over HAProxy's runtime API (slots of a pool
 * backend per service, a Host map). A host maps to its service's backend only while that service
 * has a ready machine; every other host, and any host HAProxy has not learned yet, goes to Pith's
 * own node proxy (the fallback), which holds requests while a machine boots and answers 404s.
 *
 * HAProxy learns a service's `spec.hosts` from the fallback: the first request for a host that
 * the route source knows goes through Pith and teaches HAProxy the host (the route source only
 * answers lookups; it does not list hosts). `<service>.localhost` is known from the start.
 */
export class HaproxyEngine {
  readonly #routes: RouteSource;
  readonly #onError: (error: unknown) => void;
  readonly #threads: number | undefined;
  readonly #haproxy: string;
  readonly #services = new Map<string, ServiceSlots>();
  /** Host key -> service, learned or `<service>.localhost`. */
  readonly #hosts = new Map<string, string>();
  /** What HAProxy has: `backend/sN` -> `address:port`, and host -> backend in the map. */
  #appliedSlots = new Map<string, string>();
  #appliedMap = new Map<string, string>();
  #poolSize = INITIAL_POOL;
  #freeBackends: string[] = [];
  /** Backends of removed services: free once HAProxy no longer maps a host to them. */
  #releasing: string[] = [];
  readonly #warned = new Set<string>();
  #sessions = new Map<string, number>();
  #unsubscribe: () => void;
  #dir: string | undefined;
  #api: RuntimeApi | undefined;
  #child: ChildProcess | undefined;
  /** The haproxy master's pid (its shell wrapper is #child). */
  #master: number | undefined;
  #output: string[] = [];
  #timers: NodeJS.Timeout[] = [];
  #syncing: Promise<void> | undefined;
  #dirty = false;
  #closed = false;
  #statsBusy = false;
  #listen: { host: string; port: number; fallbackPort: number } | undefined;
  readonly #killOnExit = (): void => this.#killGroup();

  /** Route source for Pith's fallback node proxy: answers as the real one and teaches HAProxy each host it routes. */
  readonly fallbackRoutes: RouteSource;

  constructor(options: HaproxyEngineOptions) {
    this.#routes = options.routes;
    this.#onError = options.onError;
    this.#threads = options.threads;
    this.#haproxy = options.haproxy ?? findHaproxy();
    for (let i = 0; i < this.#poolSize; i++) this.#freeBackends.push(poolBackend(i));
    this.#unsubscribe = options.routes.onChange((service, route) => this.#onRoute(service, route));
    this.fallbackRoutes = {
      lookup: (host, path) => {
        const route = this.#routes.lookup(host, path);
        if (route) this.#learn(host, route);
        return route;
      },
      onChange: (listener) => this.#routes.onChange(listener),
    };
  }

  /** Writes the config and starts HAProxy (master-worker) listening on host:port; resolves once it serves. */
  async start(listen: { host: string; port: number; fallbackPort: number }): Promise<void> {
    if (this.#listen) throw new Error("HaproxyEngine.start() was already called");
    // HAProxy binds the port itself: port 0 (any) is chosen here, so the URL can say which.
    this.#listen = { ...listen, port: listen.port === 0 ? await freeLoopbackPort() : listen.port };
    removeStaleDirs();
    this.#dir = mkdtempSync(join(tmpdir(), "pith-haproxy-"));
    writeFileSync(join(this.#dir, "owner"), String(process.pid));
    this.#api = new RuntimeApi(this.#socketPath);
    process.on("exit", this.#killOnExit);
    try {
      const config = this.#writeConfig();
      const check = spawnSync(this.#haproxy, ["-c", "-q", "-f", config], { encoding: "utf8" });
      if (check.status !== 0) throw new Error(`haproxy rejected the generated config ${config}: ${check.stderr.trim() || check.stdout.trim()}`);
      await this.#spawn(config);
    } catch (error) {
      await this.close();
      throw error;
    }
    this.#timers.push(setInterval(() => void this.#readStats(), STATS_MS));
    this.#timers.push(setInterval(() => this.#scheduleSync(), SWEEP_MS));
    this.#scheduleSync();
  }

  get port(): number {
    return this.#listen?.port ?? 0;
  }

  /** Where HAProxy's config, map and admin socket live, and the process group it runs in. */
  get runtime(): { dir: string | undefined; processGroup: number | undefined } {
    return { dir: this.#dir, processGroup: this.#child?.pid };
  }

  /**
   * Per-service load: HAProxy's current sessions on the service's backend (requests being served
   * there, sampled every 100 ms) added to the fallback's own counts (requests it serves or holds).
   */
  load(fallback: Record<string, ServiceLoad>): Record<string, ServiceLoad> {
    const load: Record<string, ServiceLoad> = {};
    for (const [service, own] of Object.entries(fallback)) load[service] = { ...own };
    for (const [service, slots] of this.#services) {
      if (!slots.backend) continue;
      const sessions = this.#sessions.get(slots.backend) ?? 0;
      const entry = (load[service] ??= { inFlight: 0, waiting: 0, backends: slots.machines.size });
      entry.inFlight += sessions;
      entry.backends = Math.max(entry.backends, slots.machines.size);
    }
    return load;
  }

  /** What HAProxy has been told: slot -> `address:port`, and host -> backend (for tests). */
  applied(): { slots: ReadonlyMap<string, string>; map: ReadonlyMap<string, string> } {
    return { slots: new Map(this.#appliedSlots), map: new Map(this.#appliedMap) };
  }

  /** Waits until HAProxy has every route change made so far (for tests and the benchmark). */
  async settled(): Promise<void> {
    while (this.#syncing) await this.#syncing;
  }

  /** Stops HAProxy (its workers finish nothing: a stop is a stop), removes its socket and files. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    for (const timer of this.#timers) clearInterval(timer);
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      if (this.#master !== undefined) this.#signal(this.#master, "SIGTERM");
      else this.#killGroup();
      const timer = setTimeout(() => this.#killGroup(), 3000);
      await exited;
      clearTimeout(timer);
    }
    // The shell exits when HAProxy's master does; a worker may still hold the listening socket a
    // moment longer (a connection made then is reset, not refused). Closed means the group is gone.
    if (child?.pid !== undefined) await waitForGroupGone(child.pid);
    child?.stdin?.destroy();
    process.off("exit", this.#killOnExit);
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
  }

  get #socketPath(): string {
    return join(this.#dir!, "admin.sock");
  }

  get #mapPath(): string {
    return join(this.#dir!, "hosts.map");
  }

  #onRoute(service: string, route: Route | undefined): void {
    if (!route) {
      const slots = this.#services.get(service);
      this.#services.delete(service);
      if (slots?.backend) this.#releasing.push(slots.backend);
      for (const [host, owner] of this.#hosts) if (owner === service) this.#hosts.delete(host);
    } else {
      this.#applyRoute(service, route);
    }
    this.#scheduleSync();
  }

  #applyRoute(service: string, route: Route): void {
    let slots = this.#services.get(service);
    if (!slots) {
      this.#services.set(service, (slots = { backend: this.#freeBackends.shift(), machines: new Map() }));
      const localhost = `${service}.localhost`;
      if (isHostName(localhost)) this.#hosts.set(localhost, service);
      else this.#warnOnce(`host:${localhost}`, `service ${JSON.stringify(service)} makes no valid host name: ${JSON.stringify(localhost)} stays with Pith's proxy`);
    }
    // A backend the route source should never have given (backend-address.ts) gets no slot.
    const current = new Map<string, BackendEndpoint>();
    for (const backend of route.backends) {
      const endpoint = backendEndpoint(backend.url, backend.nodeAddress);
      if ("refused" in endpoint) this.#warnOnce(`backend:${backend.machine}:${backend.url.href}`, `machine ${backend.machine} gets no HAProxy slot: ${endpoint.refused}`);
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
        this.#warnOnce(`slots:${service}`, `service ${service} has more than ${SLOTS_PER_BACKEND} ready machines: HAProxy sends the rest no requests`);
        continue;
      }
      used.add(slot);
      slots.machines.set(machine, { slot, address, port });
    }
  }

  #learn(rawHost: string, route: Route): void {
    const key = normaliseHost(rawHost);
    if (this.#hosts.get(key) === route.service) return;
    // HAProxy's key is the Host header lower-cased up to the first ':'; other forms (and anything
    // that is not a plain host name, which could smuggle a command into the runtime API) stay with the fallback.
    if (!isHostName(key)) return;
    if (!this.#services.has(route.service)) this.#applyRoute(route.service, route);
    this.#hosts.set(key, route.service);
    this.#scheduleSync();
  }

  #scheduleSync(): void {
    this.#dirty = true;
    if (this.#syncing || !this.#api || this.#closed) return;
    this.#syncing = (async () => {
      try {
        while (this.#dirty && !this.#closed) {
          this.#dirty = false;
          await this.#sync();
        }
      } catch (error) {
        this.#onError(error);
      } finally {
        this.#syncing = undefined;
      }
    })();
  }

  /** What HAProxy should have: occupied slots, and the map (hosts of services with a ready machine). */
  #desired(): { slots: Map<string, string>; map: Map<string, string> } {
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
      if (this.#routes.lookup(host, "/")?.service !== service) {
        if (localhostService(host) !== service) this.#hosts.delete(host);
        continue;
      }
      const slotted = this.#services.get(service);
      if (slotted?.backend && slotted.machines.size > 0 && isHostName(host) && isBackendName(slotted.backend)) map.set(host, slotted.backend);
    }
    return { slots, map };
  }

  async #sync(): Promise<void> {
    const api = this.#api!;
    if (this.#freeBackends.length === 0 && [...this.#services.values()].some((s) => !s.backend)) {
      await this.#grow();
      return;
    }
    const desired = this.#desired();
    const fill: string[] = [];
    for (const [key, endpoint] of desired.slots) {
      if (this.#appliedSlots.get(key) === endpoint) continue;
      const colon = endpoint.lastIndexOf(":");
      fill.push(`set server ${key} addr ${endpoint.slice(0, colon)} port ${endpoint.slice(colon + 1)}`, `set server ${key} state ready`);
    }
    const mapCommands: string[] = [];
    for (const [host, backend] of desired.map) {
      const applied = this.#appliedMap.get(host);
      if (applied === backend) continue;
      mapCommands.push(`${applied === undefined ? "add" : "set"} map ${this.#mapPath} ${host} ${backend}`);
    }
    for (const host of this.#appliedMap.keys()) if (!desired.map.has(host)) mapCommands.push(`del map ${this.#mapPath} ${host}`);
    const drain: string[] = [];
    for (const key of this.#appliedSlots.keys()) if (!desired.slots.has(key)) drain.push(`set server ${key} state maint`);
    // Slots filled before a host points at them; hosts moved away before their slots empty.
    for (const batch of [fill, mapCommands, drain]) {
      if (batch.length === 0) continue;
      const errors = runtimeErrors(await api.run(batch));
      if (errors.length > 0) this.#onError(new Error(`haproxy runtime API: ${errors.join("; ")} (for: ${batch.join("; ")})`));
    }
    this.#appliedSlots = desired.slots;
    this.#appliedMap = desired.map;
    this.#freeBackends.push(...this.#releasing.splice(0));
  }

  /** More services than backends: a config with twice the pool and the current state, and a seamless reload. */
  async #grow(): Promise<void> {
    const api = this.#api!;
    while (this.#poolSize < this.#services.size + 1) {
      for (let i = this.#poolSize; i < this.#poolSize * 2; i++) this.#freeBackends.push(poolBackend(i));
      this.#poolSize *= 2;
    }
    for (const slots of this.#services.values()) slots.backend ??= this.#freeBackends.shift();
    const before = workerPid(await api.run(["show info"]));
    this.#writeConfig();
    if (this.#master === undefined) throw new Error("haproxy master pid unknown: cannot reload");
    const deadline = Date.now() + START_LIMIT_MS;
    // A master just started can miss a USR2 (seen: the first reload after start never came, 1 run
    // in several). A second reload is harmless, so the signal is repeated until a new worker answers.
    let signalledAt = 0;
    for (;;) {
      if (Date.now() - signalledAt >= RELOAD_RESIGNAL_MS) {
        this.#signal(this.#master, "SIGUSR2");
        signalledAt = Date.now();
      }
      const pid = workerPid(await api.run(["show info"]).catch(() => ""));
      if (pid !== undefined && pid !== before) break;
      if (Date.now() > deadline) throw new Error(`haproxy did not reload within ${START_LIMIT_MS} ms:\n${this.#output.join("\n")}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Until the old worker has let go of the listener, a new connection can still land on it and
    // be reset as it stops (seen as ECONNRESET right after a reload). Idle connections close on a
    // soft stop, so this is quick; a long request only delays the wait, up to its bound.
    const oldWorkerGone = Date.now() + OLD_WORKER_WAIT_MS;
    while (before !== undefined && isAlive(before) && Date.now() < oldWorkerGone) await new Promise((resolve) => setTimeout(resolve, 20));
    this.#dirty = true; // the sweep after a reload finds nothing to do unless routes moved meanwhile
  }

  /** Writes haproxy.cfg and hosts.map from the wanted state; that state is then what HAProxy has. */
  #writeConfig(): string {
    const { host, port, fallbackPort } = this.#listen!;
    const desired = this.#desired();
    const slots = new Map<string, Map<number, SlotState>>();
    for (const { backend, machines } of this.#services.values()) {
      if (!backend) continue;
      slots.set(backend, new Map([...machines.values()].map((m) => [m.slot, { address: m.address, port: m.port }])));
    }
    writeFileSync(this.#mapPath, mapFile(desired.map));
    const config = join(this.#dir!, "haproxy.cfg");
    writeFileSync(
      config,
      haproxyConfig({
        listenHost: host,
        listenPort: port,
        fallbackPort,
        socketPath: this.#socketPath,
        mapPath: this.#mapPath,
        poolSize: this.#poolSize,
        slots,
        ...(this.#threads !== undefined ? { threads: this.#threads } : {}),
      }),
    );
    this.#appliedSlots = desired.slots;
    this.#appliedMap = desired.map;
    return config;
  }

  async #spawn(config: string): Promise<void> {
    // A shell between Pith and HAProxy holds Pith's end of a pipe: when Pith dies, even by SIGKILL,
    // the pipe closes and the shell stops HAProxy. Its own process group lets close() kill all of it.
    const script = [
      "exec 3<&0",
      'haproxy="$1"; shift',
      '"$haproxy" -W -db "$@" </dev/null &',
      "pid=$!",
      'echo "pith-haproxy-master $pid"',
      '( read -r _ <&3; kill -TERM "$pid" 2>/dev/null ) &',
      "watcher=$!",
      'wait "$pid"; code=$?',
      'kill "$watcher" 2>/dev/null',
      'exit "$code"',
    ].join("\n");
    const child = spawn("sh", ["-c", script, "sh", this.#haproxy, "-f", config], { detached: true, stdio: ["pipe", "pipe", "pipe"] });
    this.#child = child;
    const exited = new Promise<never>((_, reject) => {
      child.once("exit", (code, signal) => {
        if (!this.#closed) this.#onError(new Error(`haproxy exited (${code ?? signal}):\n${this.#output.slice(-10).join("\n")}`));
        reject(new Error(`haproxy exited (${code ?? signal}) before serving:\n${this.#output.slice(-10).join("\n")}`));
      });
      child.once("error", reject);
    });
    exited.catch(() => undefined);
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.setEncoding("utf8").on("data", (chunk: string) => {
        for (const line of chunk.split("\n")) {
          const master = /^pith-haproxy-master (\d+)$/.exec(line);
          if (master) this.#master = Number(master[1]);
          else if (line) this.#output.push(line);
        }
        if (this.#output.length > 200) this.#output.splice(0, this.#output.length - 100);
      });
    }
    const ready = (async () => {
      const deadline = Date.now() + START_LIMIT_MS;
      for (;;) {
        const up = (await this.#api!.run(["show info"], 1000).then(workerPid, () => undefined)) !== undefined && (await canConnect(this.#listen!.host, this.#listen!.port));
        if (up && this.#master !== undefined) return;
        if (Date.now() > deadline) throw new Error(`haproxy did not start within ${START_LIMIT_MS} ms:\n${this.#output.join("\n")}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();
    await Promise.race([ready, exited]);
  }

  async #readStats(): Promise<void> {
    if (this.#statsBusy || !this.#api || this.#closed) return;
    this.#statsBusy = true;
    try {
      this.#sessions = backendSessions(await this.#api.run(["show stat -1 2 -1"], 2000));
      this.#sessions.delete(FALLBACK_BACKEND);
    } catch (error) {
      this.#warnOnce("stats", `reading HAProxy's load failed (${(error as Error).message}); load reports miss HAProxy's requests until it works`);
    } finally {
      this.#statsBusy = false;
    }
  }

  #warnOnce(key: string, message: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#onError(new Error(message));
  }

  #signal(pid: number, signal: NodeJS.Signals): void {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }

  #killGroup(): void {
    const pid = this.#child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits until no process of the group is left, killing what is left after `limitMs`. */
async function waitForGroupGone(pgid: number, limitMs = 3000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (groupAlive(pgid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {
        return;
      }
      if (Date.now() > deadline + 1000) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * State dirs of Pith processes that died without closing (SIGKILL): their HAProxy is gone with
 * them (see #spawn), their config, map and socket are left; the next start removes them.
 */
function removeStaleDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith("pith-haproxy-")) continue;
    const dir = join(tmpdir(), name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, "owner"), "utf8"));
    } catch {
      continue; // not ours to judge (or being created right now)
    }
    if (!Number.isInteger(owner) || owner <= 0 || owner === process.pid) continue;
    try {
      process.kill(owner, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ESRCH") rmSync(dir, { recursive: true, force: true });
    }
  }
}

function workerPid(info: string): number | undefined {
  const match = /^Pid: (\d+)$/m.exec(info);
  return match ? Number(match[1]) : undefined;
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
