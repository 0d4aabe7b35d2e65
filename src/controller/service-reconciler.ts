import { randomBytes } from "node:crypto";
import { API_VERSION, type Kind, type ResourceInput } from "../model/resource.ts";
import type { Image, ImageSpec, Machine, MachinePhase, PithNode, Secret, Service, ServiceStatus, Volume } from "../model/kinds.ts";
import { isOfTemplate, machineTemplate, secretsUsedBy, TEMPLATE_HASH_LABEL, type MachineTemplate } from "../model/machine-template.ts";
import { recordRevision } from "../model/revision-history.ts";
import { sameDeclaration } from "../model/declaration.ts";
import { SERVICE_LABEL } from "../model/labels.ts";
import { declaredReplicas, isAutoscaled, serviceOf } from "../model/service-rules.ts";
import { messageOf } from "../shared/errors.ts";
import { StoreError, type Store } from "../store/store.ts";
import { autoscalerDesired } from "../shared/metrics.ts";
import { autoscale } from "./autoscale.ts";
import type { EventRecorder } from "./event-recorder.ts";
import { BY_NODE, BY_SERVICE, type ControllerInformers, informersFor } from "./informers.ts";
import { isDisplaced, nodePlacement } from "../model/node-placement.ts";
import type { LoadBoard } from "./load-board.ts";
import { resolveServiceImage } from "./image-resolver.ts";
import { resolveRegistryServiceImage } from "./registry-image-resolver.ts";
import { isRegistryReference } from "../registry/registry-reference.ts";
import { writeBack } from "./object-updates.ts";
import { sameJson } from "../shared/canonical-json.ts";
import type { ChangeEvent, Outcome, Reconciler } from "./runner.ts";

/** How long a service's reconcile waits to gather the changes of its machines. */
export const MACHINE_EVENT_COALESCE_MS = 100;

/** How long replacements must stay ready before a crash loop's back-off is forgiven. */
export const STABLE_AFTER_MS = 10_000;

/** Back-off before replacing a failed machine: 2 s, doubling per consecutive failure, at most 1 min. */
export function crashBackoffMs(failures: number): number {
  return Math.min(2000 * 2 ** Math.max(0, failures - 1), 60_000);
}

/**
 * Services to machines: keeps `desired` machines of the service's current template running
 * (model/machine-template.ts: image, shape, env, Secret versions, start mode, restarts).
 * Scaling, replacing failed machines (with back-off) and replacing machines of an older template
 * (new machines first, old ones retired only as new ones are ready) are one computation.
 */
export class ServiceReconciler implements Reconciler {
  readonly name = "services";
  readonly watches: Kind[] = ["Service", "Machine", "Secret", "Node"];

  constructor(
    private readonly store: Store,
    private readonly events: EventRecorder,
    private readonly load?: LoadBoard,
    /** The clock back-off, stability and autoscaling are measured with (tests drive their own). */
    private readonly now: () => number = Date.now,
    private readonly informers: ControllerInformers = informersFor(store),
  ) {}

  keysFor(event: ChangeEvent): (string | { key: string; afterMs: number })[] {
    if (event.object.kind === "Secret") {
      // A Secret's new value is a new template for every service whose env uses it.
      const secret = event.object.metadata.name;
      return this.informers.services.list().filter((s) => secretsUsedBy(s.spec).includes(secret)).map((s) => s.metadata.name);
    }
    if (event.object.kind === "Node") return this.servicesOnMovedNode(event);
    if (event.object.kind === "Service") {
      // A service's status is this reconciler's own output: its write is no reason to look again
      // (it would make every reconcile during a scale-out cause the next one at once).
      if (event.type === "MODIFIED" && event.old && sameDeclaration(event.old, event.object)) return [];
      return [event.object.metadata.name];
    }
    const service = serviceOf(event.object as Machine);
    // Machine changes come in bursts (every boot reports several times): look once per burst.
    return service ? [{ key: service, afterMs: MACHINE_EVENT_COALESCE_MS }] : [];
  }

  async allKeys(): Promise<string[]> {
    await this.informers.start();
    const keys = new Set(this.informers.services.list().map((s) => s.metadata.name));
    for (const m of this.informers.machines.list()) {
      const service = serviceOf(m);
      if (service) keys.add(service);
    }
    return [...keys];
  }

  async reconcile(name: string): Promise<Outcome> {
    await this.informers.start();
    // From the caches: the newest state, including this process's own writes (the store's
    // watch delivers them before a write resolves), without parsing any machine.
    const service = this.informers.services.get(name);
    const machines = this.informers.machines.byIndex(BY_SERVICE, name).sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
    const running = machines.filter((m) => m.spec.desiredState === "running");
    await this.forgetStopsOnLostNodes(machines);
    if (!service) {
      // The service is gone: so are its machines (the agents stop them and delete the objects).
      for (const m of running) await this.retire(m, "ServiceDeleted", `service ${name} was deleted`);
      return;
    }

    let image: Image | undefined;
    let imageSource: ServiceStatus["imageSource"];
    if (isRegistryReference(service.spec.image)) {
      try {
        ({ image, source: imageSource } = await resolveRegistryServiceImage(this.store, service.spec.image, service.status, this.informers.images.list()));
      } catch (e) {
        await this.setStatus(service, { ...service.status, observedGeneration: service.metadata.generation, message: `image ${service.spec.image}: ${messageOf(e)}` });
        return { requeueAfterMs: 10_000 };
      }
    } else image = await resolveServiceImage(this.store, service.spec.image, this.informers.images.list());
    if (!image) {
      await this.setStatus(service, { ...service.status, observedGeneration: service.metadata.generation, message: `image ${service.spec.image} not found` });
      return { requeueAfterMs: 10_000 };
    }
    const digest = image.spec.digest;
    const made = machineTemplate(service.spec, image.spec, (secret) => this.informers.secrets.get(secret) as Secret | undefined);
    if ("missing" in made) {
      // Accepted, like a Kubernetes Deployment whose pods name a missing secret; the machines
      // already running keep serving, and new ones wait for the Secret (its creation queues this).
      const message = `waiting for secrets: ${made.missing.join("; ")}`;
      if (service.status.message !== message) await this.events.record({ kind: "Service", name }, "Warning", "SecretMissing", message);
      await this.setStatus(service, { ...service.status, observedGeneration: service.metadata.generation, message });
      return { requeueAfterMs: 10_000 };
    }
    const { template, hash } = made;
    let desired = declaredReplicas(service.spec);
    let autoscaleState: ServiceStatus["autoscale"];
    let requeueAfterMs: number | undefined;
    let scaled: Promise<void> | undefined;
    if (isAutoscaled(service.spec)) {
      const decision = autoscale(service.spec, service.status.autoscale, this.load?.get(name), this.now());
      autoscaleState = decision.state;
      desired = decision.state.desired;
      autoscalerDesired.set({ service: name }, desired);
      // Awaited once the machines are made: a request held for a service at zero waits for its
      // machine, not for the event's write (events of one turn are written together, this first).
      if (decision.change) scaled = this.events.record({ kind: "Service", name }, "Normal", decision.change.startsWith("scaled up") ? "ScaledUp" : "ScaledDown", decision.change);
      scaled?.catch(() => undefined); // awaited below; marked handled now in case a step between throws
      // Idle periods and cooldowns end without any event to say so: look again soon.
      if (desired > (service.spec.min ?? 0) || decision.state.pressureSince) requeueAfterMs = 1000;
    }
    const volumes = image.spec.volumes ?? [];
    if (volumes.length > 0 && service.spec.volumes === "single") desired = Math.min(desired, 1);
    // A volume has one writer: a machine with volumes is replaced stop-then-start (its
    // replacement waits for its volume index, below), never surged.
    const surge = volumes.length > 0 ? 0 : (service.spec.update?.maxSurge ?? 1);
    const unavailable = volumes.length > 0 ? Math.max(1, service.spec.update?.maxUnavailable ?? 0) : (service.spec.update?.maxUnavailable ?? 0);
    let crashLoop = service.status.crashLoop;

    // Failed machines are retired and counted; their replacements wait out the back-off.
    for (const m of running.filter((m) => m.status.phase === "failed")) {
      const failures = (crashLoop?.failures ?? 0) + 1;
      const reason = m.status.reason ?? "failed";
      crashLoop = { failures, lastReason: reason, nextAttemptAt: new Date(this.now() + crashBackoffMs(failures)).toISOString() };
      await this.events.record({ kind: "Service", name }, "Warning", "MachineFailed", `${m.metadata.name}: ${reason}; replacing in ${crashBackoffMs(failures) / 1000}s`);
      await this.retire(m, "Failed", reason);
    }
    const healthy = running.filter((m) => m.status.phase !== "failed" && m.status.phase !== "stopped");
    // Machines on a draining or lost node are replaced as if they were gone (moveOff retires them).
    const nodeNamed = (node: string) => this.informers.nodes.get(node);
    const displaced = healthy.filter((m) => isDisplaced(m, nodeNamed));
    const staying = healthy.filter((m) => !displaced.includes(m));
    const current = staying.filter((m) => isOfTemplate(m, hash, digest));
    const outdated = staying.filter((m) => !isOfTemplate(m, hash, digest));
    const isReady = (m: Machine) => m.status.phase === "ready";

    const waitMs = crashLoop ? Date.parse(crashLoop.nextAttemptAt) - this.now() : 0;
    // Scale in: too many machines of the current image; the not-ready and newest go first.
    const excess = current.length - desired;
    if (excess > 0) {
      const victims = [...current].sort((a, b) => Number(isReady(a)) - Number(isReady(b)) || b.metadata.createdAt.localeCompare(a.metadata.createdAt));
      for (const m of victims.slice(0, excess)) await this.retire(m, "ScaledDown", `scaled to ${desired}`);
    } else if (current.length < desired) {
      // Scale out or roll forward, never beyond desired + surge machines at once.
      const room = Math.max(0, desired + surge - current.length - outdated.length);
      const wanted = Math.min(desired - current.length, outdated.length > 0 ? room : desired - current.length);
      if (wanted > 0 && waitMs > 0) requeueAfterMs = Math.min(requeueAfterMs ?? waitMs, waitMs);
      // Named by digest or name, an image first seen in a registry is still pulled from there.
      else if (volumes.length === 0) await this.createMachines(service, template, hash, wanted, imageSource?.pinned ?? image.spec.source);
      else {
        // Each machine holds its index's volumes; an index is free only once the machine that
        // had it is gone (stopped and deleted by its agent), so two never write one volume.
        const free = freeVolumeIndexes(machines, desired).slice(0, wanted);
        for (const index of free) {
          if (!(await this.createMachine(service, template, hash, imageSource?.pinned ?? image.spec.source, { index, volumes }))) requeueAfterMs = 10_000;
        }
        if (free.length < wanted) requeueAfterMs = Math.min(requeueAfterMs ?? 1000, 1000);
      }
    }
    await scaled;
    // Machines of older templates: those not ready serve nobody and go now; ready ones go only
    // while enough ready machines remain (desired - maxUnavailable), so a new template that never
    // gets ready leaves the old machines serving.
    let readyTotal = current.filter(isReady).length + outdated.filter(isReady).length;
    for (const m of outdated) {
      if (isReady(m)) {
        if (readyTotal - 1 < desired - unavailable) continue;
        readyTotal--;
      }
      await this.retire(m, "Replaced", `replaced by machines of template ${hash} (image ${digest.slice(0, 19)})`);
    }

    const readyCurrent = current.filter(isReady).length;
    await this.moveOff(displaced, readyCurrent - desired, digest, nodeNamed);
    // The back-off is forgiven only once the machines have stayed up: one that gets ready and
    // dies a moment later is the crash loop itself.
    const stable = current.filter((m) => isReady(m) && m.status.readyAt && this.now() - Date.parse(m.status.readyAt) >= STABLE_AFTER_MS).length;
    if (crashLoop && stable >= desired && desired > 0) crashLoop = undefined;
    else if (crashLoop && readyCurrent >= desired) requeueAfterMs = Math.min(requeueAfterMs ?? STABLE_AFTER_MS, STABLE_AFTER_MS);
    const revisions = recordRevision(service.status.revisions, hash, digest, service.spec, new Date(this.now()).toISOString());
    const phases: Partial<Record<MachinePhase, number>> = {};
    for (const m of machines) phases[m.status.phase] = (phases[m.status.phase] ?? 0) + 1;
    const status: ServiceStatus = {
      observedGeneration: service.metadata.generation,
      imageDigest: digest,
      ...(imageSource ? { imageSource } : {}),
      desired,
      ready: readyCurrent,
      phases,
      ...(crashLoop ? { crashLoop } : {}),
      ...(autoscaleState ? { autoscale: autoscaleState } : {}),
      templateHash: hash,
      updated: current.length,
      revision: revisions[0]!.revision,
      revisions,
    };
    await this.setStatus(service, status);
    return requeueAfterMs !== undefined ? { requeueAfterMs } : undefined;
  }

  /**
   * Retires machines on draining and lost nodes only as their replacements are ready: each ready
   * machine of the current image beyond the desired count on available nodes lets one go. So a
   * drain never lowers the ready count, and a lost node's machine that is back before its
   * replacement is ready is kept (the replacement is then the excess, scaled in).
   *
   * A lost node's machine is deleted rather than asked to stop: no agent is there to finish the
   * stop. If that agent comes back, it stops the machine, as it stops any it runs that has no
   * object (node-agent.ts).
   */
  private async moveOff(displaced: Machine[], spare: number, digest: string, nodeNamed: (node: string) => PithNode | undefined): Promise<void> {
    const leaving = spare + displaced.length;
    if (leaving <= 0) return;
    const lost = (m: Machine) => nodePlacement(nodeNamed(m.spec.node!)) === "lost";
    // Old images first, then what is not serving anyway (lost, not ready), then the oldest.
    const order = (m: Machine) => (m.spec.image !== digest ? 0 : lost(m) || m.status.phase !== "ready" ? 1 : 2);
    const victims = [...displaced].sort((a, b) => order(a) - order(b) || a.metadata.createdAt.localeCompare(b.metadata.createdAt));
    for (const m of victims.slice(0, leaving)) {
      if (!lost(m)) {
        await this.retire(m, "NodeDrained", `replaced: node ${m.spec.node} is draining`);
        continue;
      }
      await this.store.delete("Machine", m.metadata.name).catch(() => {});
      await this.events.record({ kind: "Machine", name: m.metadata.name }, "Warning", "NodeLost", `replaced: node ${m.spec.node} is NotReady; its agent stops the machine if it comes back`);
    }
  }

  /**
   * A machine asked to stop while its node is lost has no agent to finish the stop and delete its
   * object: the object goes now (the agent, if it returns, stops a machine it has no object for).
   */
  private async forgetStopsOnLostNodes(machines: Machine[]): Promise<void> {
    for (const m of machines) {
      if (m.spec.desiredState !== "stopped" || !m.spec.node || nodePlacement(this.informers.nodes.get(m.spec.node)) !== "lost") continue;
      await this.store.delete("Machine", m.metadata.name).catch(() => {});
    }
  }

  /** A node that starts or stops draining, or is lost or back, concerns the services of its machines. */
  private servicesOnMovedNode(event: ChangeEvent): string[] {
    const before = event.old ? nodePlacement(event.old as PithNode) : undefined;
    if (event.type !== "DELETED" && before === nodePlacement(event.object as PithNode)) return [];
    const services = new Set<string>();
    for (const m of this.informers.machines.byIndex(BY_NODE, event.object.metadata.name)) if (m.spec.service) services.add(m.spec.service);
    return [...services];
  }

  private async setStatus(service: Service, status: ServiceStatus): Promise<void> {
    if (!sameJson(service.status, status)) await writeBack(this.store, service, { status });
  }

  /**
   * `source`: where a node lacking the image pulls it (`registry/repo@sha256:...`); not part of
   * the template (same bytes). False when the machine cannot be made (its volumes belong to
   * someone else). Volumes come with the image, so its digest in the template covers them.
   */
  private async createMachine(service: Service, template: MachineTemplate, hash: string, source?: string, withVolumes?: { index: number; volumes: NonNullable<ImageSpec["volumes"]> }): Promise<boolean> {
    const attached = withVolumes ? await this.ensureVolumes(service, withVolumes.index, withVolumes.volumes) : undefined;
    if (withVolumes && !attached) return false;
    const machine = await this.store.create<Machine>(machineInput(service, template, hash, source, withVolumes && attached ? { index: withVolumes.index, attached } : undefined));
    await this.events.record({ kind: "Service", name: service.metadata.name }, "Normal", "MachineCreated", `created machine ${machine.metadata.name}`);
    return true;
  }

  /**
   * `count` machines without volumes, written together (one writeMany: for SQLite one commit for
   * a whole scale-out) and their events after them, together too. A name already taken (three
   * random bytes can collide) is one machine fewer this time: the next reconcile makes it.
   */
  private async createMachines(service: Service, template: MachineTemplate, hash: string, count: number, source?: string): Promise<void> {
    const results = await this.store.writeMany(Array.from({ length: count }, () => ({ create: machineInput(service, template, hash, source) })));
    const created = results.flatMap((r) => ("object" in r ? [r.object] : []));
    await Promise.all(created.map((m) => this.events.record({ kind: "Service", name: service.metadata.name }, "Normal", "MachineCreated", `created machine ${m.metadata.name}`)));
    const refused = results.find((r): r is { error: StoreError } => "error" in r && r.error.code !== "AlreadyExists");
    if (refused) throw refused.error;
  }

  /** The Volumes of one machine index, created (empty, by the node at first attach) if missing. */
  /**
   * Names can collide across services (`a-b` + `c` and `a` + `b-c` both give `a-b-c-0`), so a
   * service uses only Volumes made for it: another's, or one made by hand, is refused, with an event.
   */
  private async ensureVolumes(service: Service, index: number, volumes: NonNullable<ImageSpec["volumes"]>): Promise<{ name: string; volume: string }[] | undefined> {
    const attached: { name: string; volume: string }[] = [];
    for (const v of volumes) {
      const volume = volumeName(service, v.name, index);
      const existing = await this.store.get<Volume>("Volume", volume);
      if (existing && existing.metadata.labels[SERVICE_LABEL] !== service.metadata.name) {
        await this.events.record({ kind: "Service", name: service.metadata.name }, "Warning", "VolumeTaken",
          `volume ${volume} exists and does not belong to service ${service.metadata.name}; no machine uses it`);
        return undefined;
      }
      if (!existing) {
        await this.store.create<Volume>({ apiVersion: API_VERSION, kind: "Volume", metadata: { name: volume, labels: { [SERVICE_LABEL]: service.metadata.name } }, spec: { sizeMiB: v.sizeMiB } })
          .catch((e: unknown) => (e instanceof StoreError && e.code === "AlreadyExists" ? undefined : Promise.reject(e)));
        await this.events.record({ kind: "Service", name: service.metadata.name }, "Normal", "VolumeCreated", `created volume ${volume} (${v.sizeMiB} MiB)`);
      }
      attached.push({ name: v.name, volume });
    }
    return attached;
  }

  /** An unscheduled machine is simply deleted; a placed one is stopped by its agent, which then deletes it. */
  private async retire(machine: Machine, reason: string, message: string): Promise<void> {
    if (!machine.spec.node) {
      await this.store.delete("Machine", machine.metadata.name).catch(() => {});
    } else {
      await writeBack(this.store, machine, { spec: { ...machine.spec, desiredState: "stopped" } });
    }
    await this.events.record({ kind: "Machine", name: machine.metadata.name }, reason === "Failed" ? "Warning" : "Normal", reason, message);
  }
}

/**
 * A new machine of the service's template. `source`: where a node lacking the image pulls it
 * (`registry/repo@sha256:...`); not part of the template (same bytes). Volumes come with the
 * image, so its digest in the template covers them.
 */
function machineInput(service: Service, template: MachineTemplate, hash: string, source: string | undefined, volumes?: { index: number; attached: { name: string; volume: string }[] }): ResourceInput<"Machine", Machine["spec"], Machine["status"]> {
  const { image, memoryMiB, vcpus, env, secretEnv, startMode } = template;
  return {
    apiVersion: API_VERSION,
    kind: "Machine",
    metadata: {
      name: `${service.metadata.name}-${randomBytes(3).toString("hex")}`,
      labels: { [SERVICE_LABEL]: service.metadata.name, [TEMPLATE_HASH_LABEL]: hash, ...(volumes ? { [VOLUME_INDEX_LABEL]: String(volumes.index) } : {}) },
    },
    spec: {
      service: service.metadata.name,
      image,
      ...(source ? { imageSource: source } : {}),
      memoryMiB,
      vcpus,
      env,
      ...(Object.keys(secretEnv).length > 0 ? { secretEnv } : {}),
      ...(startMode !== "boot" || service.spec.startMode ? { startMode } : {}),
      desiredState: "running",
      ...(volumes ? { volumes: volumes.attached } : {}),
    },
    status: { phase: "pending" },
  };
}

/** Which volume index a machine holds (services whose image declares volumes). */
export const VOLUME_INDEX_LABEL = "pith.dev/volume-index";

/** `<service>-<volume>-<index>`, or `<service>-<volume>` for a service sharing one volume. */
export const volumeName = (service: Service, volume: string, index: number): string =>
  service.spec.volumes === "single" ? `${service.metadata.name}-${volume}` : `${service.metadata.name}-${volume}-${index}`;

/** The indexes below `desired` that no machine object of the service holds, lowest first. */
export function freeVolumeIndexes(machines: readonly Machine[], desired: number): number[] {
  const taken = new Set(machines.map((m) => m.metadata.labels[VOLUME_INDEX_LABEL]).filter((v) => v !== undefined).map(Number));
  return Array.from({ length: desired }, (_, i) => i).filter((i) => !taken.has(i));
}
