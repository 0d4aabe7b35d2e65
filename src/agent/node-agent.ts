import { availableParallelism, hostname, totalmem } from "node:os";
import { join } from "node:path";
import { isApiError, isApiUnavailable, type PithClient } from "../client/index.ts";
import { apiSource } from "../client/api-source.ts";
import { Informer, untilSynced } from "../client/informer.ts";
import { EventRecorder } from "../controller/event-recorder.ts";
import { type WorkOutcome, WorkQueue } from "../controller/work-queue.ts";
import type { BootTimings, Hypervisor, Machine as RunningMachine, MachineSpec } from "../hypervisor/hypervisor.ts";
import { bootFiles, resolveImage } from "../image/image-store.ts";
import { API_VERSION } from "../model/resource.ts";
import type { Machine, MachinePull, MachineStatus, PithNode } from "../model/kinds.ts";
import { pullForMachine, pullIfMissing, type ImagePuller } from "./image-pull.ts";
import { bootToReadySeconds } from "../shared/metrics.ts";
import { AgentStateLog, readAgentState } from "./agent-state.ts";
import { StatusReports } from "./status-reports.ts";
import { attachVolumes, detachVolumes } from "./volume-attachments.ts";
import { VolumeReclaimer } from "./volume-reclaimer.ts";
import { messageOf } from "../shared/errors.ts";
import { machinesDir } from "../shared/paths.ts";
import { MachineStarter, type StartNotice } from "../snapshot/machine-starter.ts";
import { WarmPool } from "../snapshot/warm-pool.ts";
import { WarmDemand } from "../snapshot/warm-demand.ts";

/** The agent's machine index: by the node a machine is placed on. */
const BY_NODE = "node";

/**
 * Machines worked on at once. Starting and stopping wait for nothing long (a drain comes back
 * later; boots are watched, not awaited), and without a bound, ten thousand new machines were
 * ten thousand concurrent requests that timed out against the control plane.
 */
const AGENT_WORKERS = 32;

/** A start that takes longer than this is reported as booting before it has a pid. */
const QUICK_START_MS = 200;

/** An image from this host's image store, unpacked for booting. */
async function localBootSource(digest: string): Promise<Pick<MachineSpec, "image" | "kernel" | "initrd" | "disk">> {
  const image = await resolveImage(digest);
  return { image: image.record, ...(await bootFiles(image)) };
}

/** What a status says of a running machine: its process, accelerator, forwarded ports and jail. */
function runningFields(machine: RunningMachine): Pick<MachineStatus, "pid" | "accelerator" | "addresses" | "jail"> {
  return { pid: machine.pid, accelerator: machine.accelerator, addresses: machine.ports, ...(machine.jail ? { jail: machine.jail } : {}) };
}

/** What a status says of a machine that is ready: the phase, its timings, and since when (kept if it said so before). */
function readyFields(timings: BootTimings, readyAt: string | undefined): Pick<MachineStatus, "phase" | "timings" | "readyAt"> {
  return { phase: "ready", ...(timings.readyMs !== undefined ? { timings } : {}), readyAt: readyAt ?? new Date().toISOString() };
}

/** The machine's timings if it is ready within `ms`; undefined if not (or if it ends first). */
async function readyWithin(machine: RunningMachine, ms: number): Promise<BootTimings | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([machine.whenReady().catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The host's name, made a valid object name. */
export const defaultNodeName = (): string => hostname().toLowerCase().replace(/[^a-z0-9.-]/g, "-");

export interface NodeAgentOptions {
  client: PithClient;
  hypervisor: Hypervisor;
  nodeName?: string;
  accelerator: "kvm" | "tcg";
  /**
   * Where other hosts reach this node's machines (`pith agent --address`): registered on the Node,
   * where proxies look it up. The hypervisor must forward listen ports there. Default: none
   * (loopback: proxies on this host only).
   */
  address?: string;
  /** What this node offers; defaults: host memory less 1 GiB, 4 vCPUs per core (machines mostly idle). */
  capacity?: { memoryMiB: number; vcpus: number };
  heartbeatMs?: number;
  /**
   * How long a machine stays draining before it is stopped: proxies drop it from their routes as
   * soon as its object says it is going, so by the time it stops no new request is sent to it.
   */
  drainMs?: number;
  /** Where a machine's image comes from; default: the local image store. */
  bootSource?: (digest: string) => Promise<Pick<MachineSpec, "image" | "kernel" | "initrd" | "disk">>;
  /** Gets a machine's image from its registry when this node lacks it; default: pullIfMissing. */
  imagePuller?: ImagePuller;
  /** Starts machines in their start mode; default: snapshots in the local image store. */
  starter?: MachineStarter;
  /**
   * Keeps the warm pools Services ask for (`spec.warm`); false: none. Default: one over the
   * starter's snapshots, machines under the machines dir.
   */
  warmPool?: WarmPool | false;
  /** How often every machine of this node is looked at again, from the cache (default 10 s). */
  resyncMs?: number;
  /**
   * How often the cache is listed afresh, the safety net against a watch that missed something
   * (default 5 min): at 10,000 machines a list costs the control plane about a second of CPU.
   */
  relistMs?: number;
  log?: (message: string) => void;
}

/**
 * The node agent: kubelet's job, for machines. It registers its node, heartbeats, and makes
 * the machines placed on it real: starts them, reports their phases and timings, stops them
 * when asked, and deletes their objects once they are gone.
 *
 * It keeps no state of its own. After a restart (even a kill -9) it finds the machines still
 * running from the processes themselves (Hypervisor.recover) and carries on with them: same
 * QEMU, no duplicate; a running machine nobody wants any more is stopped, so no orphan stays.
 */
export class NodeAgent {
  readonly nodeName: string;
  private readonly client: PithClient;
  private readonly hypervisor: Hypervisor;
  private readonly running = new Map<string, RunningMachine>();
  /**
   * Every Machine, kept current by a list and a watch: what a reconcile acts on (the newest
   * version seen, including this agent's own writes), so following a machine costs no request.
   */
  private readonly machines: Informer<Machine>;
  /**
   * Machine names to reconcile: one worker per machine at a time (its steps never interleave),
   * AGENT_WORKERS machines at once, failures retried with back-off per machine.
   */
  private readonly queue: WorkQueue;
  /** When each draining machine may be stopped. */
  private readonly drainEnds = new Map<string, number>();
  /** Reports from a running machine (ready, failed, exited), done on its turn before its reconcile. */
  private readonly steps = new Map<string, (() => Promise<void>)[]>();
  private readonly abort = new AbortController();
  private timers: NodeJS.Timeout[] = [];
  private readonly log: (message: string) => void;
  private readonly starter: MachineStarter;
  private readonly events: EventRecorder;
  /** Machine status writes, sent several to a request (status-reports.ts). */
  private readonly statusReports: StatusReports;
  private readonly warmPool: WarmPool | undefined;
  private readonly warmDemand: WarmDemand | undefined;

  constructor(private readonly options: NodeAgentOptions) {
    this.client = options.client;
    // Through the API: an agent holds no store, and its token may write only what a node may.
    this.events = new EventRecorder(this.client);
    this.statusReports = new StatusReports(this.client);
    this.hypervisor = options.hypervisor;
    this.starter = options.starter ?? new MachineStarter({ hypervisor: options.hypervisor });
    this.nodeName = options.nodeName ?? defaultNodeName();
    this.stateLog = new AgentStateLog(this.nodeName, {
      handles: () => Object.fromEntries([...this.recordedPool, ...[...this.running].map(([name, m]): [string, number] => [name, m.pid])].map(([name, pid]) => [name, { pid }])),
      count: () => this.running.size + this.recordedPool.size,
    });
    this.log = options.log ?? (() => {});
    this.warmPool = options.warmPool === false ? undefined
      : (options.warmPool ?? new WarmPool({ hypervisor: options.hypervisor, starter: this.starter, stateDirFor: (id) => join(machinesDir(), id), hasRoomFor: (mib) => this.hasRoomForWarm(mib), log: this.log }));
    this.warmDemand = this.warmPool && new WarmDemand({ client: this.client, pool: this.warmPool, bootSource: options.bootSource ?? localBootSource, log: this.log });
    this.machines = new Informer(apiSource(this.client, "Machine"), {
      indexes: { [BY_NODE]: (m) => (m.spec.node ? [m.spec.node] : []) },
      onError: (e) => this.log(`machine cache: ${messageOf(e)}`),
    });
    this.queue = new WorkQueue({
      process: (name) => this.process(name),
      concurrency: AGENT_WORKERS,
      onError: (name, e) => this.log(`machine ${name}: ${messageOf(e)}`),
    });
  }

  async start(): Promise<void> {
    this.jailMissing = (await this.hypervisor.jailMissing?.()) ?? [];
    await this.register();
    const saved = await readAgentState(this.nodeName);
    // A claimed warm machine's QEMU keeps its pool name: its saved handle says whose it is now.
    const nameByPid = new Map(Object.entries(saved?.machines ?? {}).map(([name, m]) => [m.pid, name]));
    // Every machine of this agent on the host, not only those with a saved handle: a QEMU spawned
    // but not yet recorded (the agent died during its start), a snapshot source or a warm machine
    // being made has none. Left unfound, the first would be started again beside itself, and all
    // of them would run on unowned. Each is then reconciled: one without an object is stopped.
    for (const machine of await this.hypervisor.recover()) {
      const name = nameByPid.get(machine.pid) ?? machine.id;
      this.setRunning(name, machine);
      this.log(`re-adopted machine ${name} (pid ${machine.pid}, ${nameByPid.has(machine.pid) ? "from its saved handle" : "found on the host without a handle"})`);
    }
    await this.saveState();
    // Level-based: a full pass once the cache is listed and on every resync, plus the cache's
    // changes for promptness (a relist after a lost history reports its differences as changes).
    const mine = (m: Machine | undefined) => m?.spec.node === this.nodeName;
    this.machines.addHandler({
      added: (m) => mine(m) && this.queue.add(m.metadata.name),
      updated: (old, m) => (mine(old) || mine(m)) && this.queue.add(m.metadata.name),
      deleted: (m) => mine(m) && this.queue.add(m.metadata.name),
    });
    const watching = this.machines.run(this.abort.signal);
    watching.catch((e: Error) => this.log(`machine watch ended: ${e.message}`));
    // A first list that fails fails the start, as before the cache.
    await untilSynced([this.machines], watching);
    this.enqueueAll();
    // Warm pools after the machines: a pool machine left by an earlier agent has no object, and
    // is stopped above like any other; the pools are filled afresh.
    await this.warmDemand?.start(this.abort.signal);
    new VolumeReclaimer(this.client, this.nodeName, this.log).start(this.abort.signal);
    this.timers.push(setInterval(() => void this.heartbeat().catch((e: Error) => this.log(`heartbeat failed: ${e.message}`)), this.options.heartbeatMs ?? 5000));
    this.timers.push(setInterval(() => this.enqueueAll(), this.options.resyncMs ?? 10_000));
    this.timers.push(setInterval(() => void this.relist().catch((e: Error) => this.log(`relist failed: ${e.message}`)), this.options.relistMs ?? 300_000));
  }

  /** A fresh list into the cache, in case the watch missed something, then a look at every machine. */
  private async relist(): Promise<void> {
    const { items, metadata } = await this.client.list("Machine");
    this.machines.relist(items, metadata.resourceVersion);
    this.enqueueAll();
  }

  /** Every machine of this node, and every running one without an object (deleted while we were away: stopped). */
  private enqueueAll(): void {
    for (const m of this.machines.byIndex(BY_NODE, this.nodeName)) this.queue.add(m.metadata.name);
    for (const name of this.running.keys()) this.queue.add(name);
  }

  /** Stops watching and heartbeating; machines keep running (they belong to the host, not to us). */
  stop(): void {
    this.abort.abort();
    this.queue.stop();
    for (const t of this.timers) clearInterval(t);
    for (const machine of this.running.values()) machine.detach();
    // Paused pool machines serve no one: they are stopped rather than left to the next agent.
    this.warmPool?.close().catch((e: unknown) => this.log(`warm pools: ${messageOf(e)}`));
  }

  /** Writes the handles recorded since the last save (coalesced: a thousand starts cost a few appends). */
  private saveState(): Promise<void> {
    this.recordPool();
    return this.stateLog.save().catch((e: Error) => this.log(`cannot save agent state: ${e.message}`));
  }

  /** The running machines' handles, on disk for a restarted agent (agent-state.ts). */
  private readonly stateLog: AgentStateLog;
  /** Pool machines as last recorded in the state log (id -> pid). */
  private recordedPool = new Map<string, number>();

  /**
   * Pool machines go into the saved handles too, so a restarted agent finds them (with no object,
   * it stops them) instead of leaving a paused QEMU behind. A claimed one is recorded under its
   * Machine's name when it starts running, before its pool id is dropped here.
   */
  private recordPool(): void {
    const pooled = new Map((this.warmPool?.machines() ?? []).map((m) => [m.id, m.pid]));
    for (const [id, pid] of pooled) if (this.recordedPool.get(id) !== pid) this.stateLog.started(id, pid);
    for (const id of this.recordedPool.keys()) if (!pooled.has(id) && !this.running.has(id)) this.stateLog.stopped(id);
    this.recordedPool = pooled;
  }

  private setRunning(name: string, machine: RunningMachine): void {
    this.running.set(name, machine);
    this.stateLog.started(name, machine.pid);
  }

  private forgetRunning(name: string): void {
    this.running.delete(name);
    this.stateLog.stopped(name);
  }

  /**
   * One turn of a machine: its pending reports first, then a reconcile from the newest state. A
   * report that fails because the API is briefly away is kept, first in line, and the queue tries
   * the machine again with back-off: each report is made once per running machine, so one dropped
   * would leave it "booting" for good, or a machine that missed its readiness never stopped.
   * Reports read the newest object when they run, so running one again is safe. A report the API
   * refuses (it would be refused again) is logged and dropped, so it cannot hold back the
   * machine's reconcile, its stop included.
   */
  private async process(name: string): Promise<WorkOutcome> {
    for (let step = this.steps.get(name)?.shift(); step; step = this.steps.get(name)?.shift()) {
      try {
        await step();
      } catch (e) {
        if (!isApiUnavailable(e)) {
          this.log(`machine ${name}: ${messageOf(e)}`);
          continue;
        }
        const steps = this.steps.get(name) ?? [];
        steps.unshift(step);
        this.steps.set(name, steps);
        throw e;
      }
    }
    this.steps.delete(name);
    return this.reconcile(name);
  }

  /** This node's machine by that name, as the cache has it (a machine placed elsewhere is not ours). */
  private latest(name: string): Machine | undefined {
    const object = this.machines.get(name);
    return object?.spec.node === this.nodeName ? object : undefined;
  }

  private async reconcile(name: string): Promise<WorkOutcome> {
    // The newest state seen, not the one that queued this work: queued work may be older.
    const latest = this.latest(name);
    const local = this.running.get(name);
    if (!latest || latest.spec.desiredState === "stopped") {
      if (!local) {
        this.drainEnds.delete(name);
      } else {
        if (latest) {
          // Drain without holding a worker: the machine's turn comes back when its drain is over.
          let ends = this.drainEnds.get(name);
          if (ends === undefined) {
            this.log(`stopping machine ${name}`);
            await this.setStatus(name, { ...latest.status, phase: "draining" });
            ends = Date.now() + (this.options.drainMs ?? 1000);
            this.drainEnds.set(name, ends);
          }
          if (ends > Date.now()) return { requeueAfterMs: ends - Date.now() };
        } else if (!this.drainEnds.has(name)) {
          this.log(`stopping machine ${name}`);
        }
        this.drainEnds.delete(name);
        await local.stop();
        this.forgetRunning(name);
        await this.saveState();
      }
      if (latest) await this.releaseVolumes(latest);
      if (latest) await this.client.delete("Machine", name).catch((e) => (isApiError(e, 404) ? undefined : Promise.reject(e)));
      return;
    }
    if (latest.spec.node !== this.nodeName) return;
    if (local) {
      this.watchMachine(name, latest, local);
      return;
    }
    const phase = latest.status.phase;
    if (phase === "pending") {
      await this.startMachine(latest);
      return;
    }
    if (phase === "booting" || phase === "ready" || phase === "draining") {
      // It was running here, but no process is left: it died while nobody was watching.
      await this.setStatus(name, { ...latest.status, phase: "failed", reason: "its QEMU process ended while the agent was not running", stoppedAt: new Date().toISOString() });
    }
  }

  private async startMachine(machine: Machine): Promise<void> {
    const name = machine.metadata.name;
    const startedAt = new Date().toISOString();
    // A quick start is reported once, with its pid. Only a slow one (an image to pull or unpack,
    // a snapshot to make) says "booting" first, so the start is visible while it lasts.
    let early: Promise<void> | undefined;
    const sayBooting = (): Promise<void> =>
      (early ??= this.setStatus(name, { phase: "booting", node: this.nodeName, startedAt }).catch((e: unknown) => this.log(`machine ${name}: ${messageOf(e)}`)));
    const slow = setTimeout(() => void sayBooting(), QUICK_START_MS);
    const settled = async () => {
      clearTimeout(slow);
      await early;
    };
    let started: { running: RunningMachine; pull?: MachinePull; claimed?: true };
    try {
      const warm = await this.claimWarm(machine);
      started = warm ? { running: warm, claimed: true } : await this.startFresh(machine, sayBooting);
    } catch (e) {
      await settled();
      const pulling = this.latest(name)?.status.pull;
      await this.setStatus(name, { phase: "failed", node: this.nodeName, reason: `cannot start: ${messageOf(e)}`, ...(pulling ? { pull: pulling } : {}), startedAt, stoppedAt: new Date().toISOString() });
      await this.releaseVolumes(machine);
      return;
    }
    await settled();
    const { running, pull, claimed } = started;
    this.setRunning(name, running);
    // A claimed warm machine is ready within tens of ms of its claim: waited for (while its handle
    // is saved), it is reported once, ready, rather than booting and then ready, two writes in a
    // row on the path of the request that is waiting for it.
    const [, readyNow] = await Promise.all([this.saveState(), claimed ? readyWithin(running, QUICK_START_MS) : undefined]);
    this.log(`started machine ${name} (pid ${running.pid}, ${running.accelerator})`);
    await this.setStatus(name, {
      node: this.nodeName,
      startedFrom: running.startedFrom,
      ...(pull ? { pull } : {}),
      startedAt,
      ...runningFields(running),
      ...(readyNow ? readyFields(readyNow, undefined) : { phase: "booting" }),
    });
    this.watchMachine(name, this.latest(name), running);
  }

  /** Its image (pulled if this node lacks it), Secrets and volumes, then a start in its start mode. */
  private async startFresh(machine: Machine, sayBooting: () => Promise<void>): Promise<{ running: RunningMachine; pull?: MachinePull }> {
    const name = machine.metadata.name;
    const pull = await this.pullImage(machine, sayBooting);
    // Secret values are asked for at each start and kept only in the hypervisor's spec: the
    // agent's saved handles and the Machine object never hold them.
    const secrets = machine.spec.secretEnv && Object.keys(machine.spec.secretEnv).length > 0 ? await this.client.secretEnv(name) : undefined;
    const volumes = machine.spec.volumes?.length ? await attachVolumes(this.client, this.nodeName, machine, this.log) : [];
    const spec: MachineSpec = {
      id: name,
      ...(await (this.options.bootSource ?? localBootSource)(machine.spec.image)),
      stateDir: join(machinesDir(), name),
      env: { ...machine.spec.env, ...secrets?.env },
      ...(secrets ? { secretHashes: secrets.hashes } : {}),
      ...(volumes.length ? { volumes } : {}),
    };
    const running = await this.starter.start(spec, machine.spec.startMode ?? "boot", (notice) => this.recordEvent(name, notice));
    return { running, ...(pull ? { pull } : {}) };
  }

  /**
   * A machine in snapshot mode takes a paused, warmed machine of its service's pool on this node
   * if there is one, before anything else a start does (the image check and boot files: the pool
   * machine runs them already). Pools are kept for neither Secrets nor volumes (warm-demand.ts),
   * so a machine with either never takes one.
   */
  private async claimWarm(machine: Machine): Promise<RunningMachine | undefined> {
    const { service, startMode, secretEnv, volumes, image, env } = machine.spec;
    if (!this.warmPool || startMode !== "snapshot" || !service) return undefined;
    if ((secretEnv && Object.keys(secretEnv).length > 0) || (volumes?.length ?? 0) > 0) return undefined;
    const name = machine.metadata.name;
    const warm = await this.warmPool.take(service, { id: name, image: { digest: image }, env: { ...env } });
    if (warm) this.recordEvent(name, { type: "Normal", reason: "WarmMachineClaimed", message: `took a warm machine of the pool (pid ${warm.pid}) and gave it this machine's identity` });
    return warm;
  }

  /** The machine's image from its registry, if this node lacks it: progress on its status, start and end on its events. */
  private pullImage(machine: Machine, sayBooting: () => Promise<void>): Promise<MachinePull | undefined> {
    const name = machine.metadata.name;
    return pullForMachine(machine, this.options.imagePuller ?? pullIfMissing, {
      status: async (pull) => {
        // A pull is a slow start: it is booting from its first progress on.
        await sayBooting();
        const current = this.latest(name);
        if (current?.status.phase === "booting") await this.setStatus(name, { ...current.status, pull });
      },
      event: (type, reason, message) => this.recordEvent(name, { type, reason, message }),
      log: (message) => this.log(`machine ${name}: ${message}`),
    });
  }

  private readonly watched = new WeakSet<RunningMachine>();

  /** Reports a machine's readiness and its end, once per running machine. */
  private watchMachine(name: string, object: Machine | undefined, machine: RunningMachine): void {
    if (this.watched.has(machine)) return;
    this.watched.add(machine);
    machine.whenReady().then(
      (timings) => {
        if (timings.readyMs !== undefined) bootToReadySeconds.observe({ image: object?.spec.image.slice(7, 19) ?? "" }, timings.readyMs / 1000);
        const update = async () => {
          const current = this.latest(name);
          // Only forward: a machine told to stop while it booted is draining, not ready.
          if (!current || current.spec.desiredState !== "running" || (current.status.phase !== "pending" && current.status.phase !== "booting")) return;
          await this.setStatus(name, { ...current.status, ...runningFields(machine), ...readyFields(timings, current.status.readyAt) });
        };
        this.enqueueStep(name, update);
      },
      (e: unknown) => {
        if (machine.exit) return; // its end is reported below
        this.enqueueStep(name, async () => {
          const current = this.latest(name);
          if (current) await this.setStatus(name, { ...current.status, phase: "failed", reason: messageOf(e) });
          await machine.stop(1000);
        });
      },
    ).catch((e: unknown) => this.log(`machine ${name}: ${messageOf(e)}`));
    machine.whenExited().then((exit) => {
      this.enqueueStep(name, async () => {
        if (this.running.get(name) === machine) {
          this.forgetRunning(name);
          await this.saveState();
        }
        const current = this.latest(name);
        if (current) await this.releaseVolumes(current);
        if (!current) return;
        if (current.spec.desiredState === "stopped") {
          await this.client.delete("Machine", name).catch(() => {});
          return;
        }
        if (current.status.phase === "failed") return;
        await this.setStatus(name, {
          ...current.status,
          phase: "failed",
          reason: exit.reason,
          ...(exit.code !== undefined ? { exitCode: exit.code } : {}),
          stoppedAt: new Date().toISOString(),
        });
      });
    }, (e: unknown) => this.log(`machine ${name}: ${messageOf(e)}`));
  }

  /** Snapshot and pull outcomes go on the machine's events, where `pith describe` and the GUI show them. */
  private recordEvent(machine: string, notice: Omit<StartNotice, "reason"> & { reason: StartNotice["reason"] | "Pulling" | "Pulled" | "PullFailed" }): void {
    this.log(`machine ${machine}: ${notice.reason}: ${notice.message}`);
    this.events
      .record({ kind: "Machine", name: machine }, notice.type, notice.reason, notice.message)
      .catch((e: Error) => this.log(`cannot record event for ${machine}: ${e.message}`));
  }

  /** A failed release is logged: the API lets the next machine take a volume whose holder is gone anyway. */
  private async releaseVolumes(machine: Machine): Promise<void> {
    if (!machine.spec.volumes?.length) return;
    await detachVolumes(this.client, machine).catch((e: unknown) => this.log(`machine ${machine.metadata.name}: cannot release its volumes: ${messageOf(e)}`));
  }

  private enqueueStep(name: string, step: () => Promise<void>): void {
    const steps = this.steps.get(name) ?? [];
    steps.push(step);
    this.steps.set(name, steps);
    // Reports first: a machine that is ready should be routable before more machines start.
    this.queue.add(name, { urgent: true });
  }

  private async setStatus(name: string, status: MachineStatus): Promise<void> {
    try {
      // What we wrote is the newest state: later reconciles must not act on the older one.
      this.machines.observe(await this.statusReports.write(name, status));
    } catch (e) {
      if (!isApiError(e, 404)) throw e;
    }
  }


  private capacity(): { memoryMiB: number; vcpus: number } {
    return this.options.capacity ?? { memoryMiB: Math.floor(totalmem() / 1024 / 1024) - 1024, vcpus: availableParallelism() * 4 };
  }

  private async register(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const existing = await this.client.get("Node", this.nodeName);
      // Cordon and drain are the operator's (`pith cordon`, `pith drain`): a restart keeps them.
      const { unschedulable, drain } = existing?.spec ?? {};
      const spec: PithNode["spec"] = {
        capacity: this.capacity(),
        accelerator: this.options.accelerator,
        ...(this.options.address ? { address: this.options.address } : {}),
        ...(unschedulable !== undefined ? { unschedulable } : {}),
        ...(drain !== undefined ? { drain } : {}),
      };
      try {
        if (!existing) {
          await this.client.create({ apiVersion: API_VERSION, kind: "Node", metadata: { name: this.nodeName }, spec, status: this.nodeStatus() });
        } else {
          const { labels, resourceVersion } = existing.metadata;
          await this.client.update({ apiVersion: API_VERSION, kind: "Node", metadata: { name: this.nodeName, labels, resourceVersion }, spec, status: this.nodeStatus() });
        }
        return;
      } catch (e) {
        // An operator cordoned or drained the node between our read and write: read it again.
        if (attempt >= 3 || !(isApiError(e, 409) || isApiError(e, 403))) throw e;
      }
    }
  }

  /** Said once at start (by the driver) and on the Node, for `pith get nodes -o wide`. */
  private jailMissing: string[] = [];

  private nodeStatus(): PithNode["status"] {
    const warm = this.warmPool?.counts();
    const warmMemoryMiB = this.warmPool?.heldMemoryMiB() ?? 0;
    return {
      ready: true,
      heartbeatAt: new Date().toISOString(),
      agentVersion: "0.1.0",
      jailMissing: this.jailMissing,
      ...(warm && Object.keys(warm).length ? { warm } : {}),
      ...(warmMemoryMiB > 0 ? { warmMemoryMiB } : {}),
    };
  }

  /** What the machines placed here and meant to run claim. */
  private allocated(): NonNullable<PithNode["status"]["allocated"]> {
    const mine = this.machines.byIndex(BY_NODE, this.nodeName).filter((m) => m.spec.desiredState === "running");
    return mine.reduce((a, m) => ({ memoryMiB: a.memoryMiB + m.spec.memoryMiB, vcpus: a.vcpus + m.spec.vcpus, machines: a.machines + 1 }), { memoryMiB: 0, vcpus: 0, machines: 0 });
  }

  /**
   * A warm machine fills only into memory no machine placed here claims: the scheduler placed
   * those against this node's capacity, and a pool that took their room would overcommit the host.
   */
  private hasRoomForWarm(memoryMiB: number): boolean {
    const held = this.warmPool?.heldMemoryMiB() ?? 0;
    return this.capacity().memoryMiB - this.allocated().memoryMiB - held >= memoryMiB;
  }

  private async heartbeat(): Promise<void> {
    const allocated = this.allocated();
    await this.client.updateStatus("Node", this.nodeName, { ...this.nodeStatus(), allocated });
    // A machine that stopped since may have left room for a pool that had none.
    this.warmPool?.refill();
    // Pools fill on their own time: what they hold now reaches the saved handles within a beat.
    if (this.warmPool) await this.saveState();
  }
}
