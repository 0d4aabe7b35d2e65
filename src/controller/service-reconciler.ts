import { randomBytes } from "node:crypto";
import { API_VERSION, type Kind } from "../model/resource.ts";
import type { Image, Machine, MachinePhase, Service, ServiceStatus } from "../model/kinds.ts";
import { sameDeclaration } from "../model/declaration.ts";
import { SERVICE_LABEL } from "../model/labels.ts";
import { declaredReplicas, isAutoscaled, serviceOf } from "../model/service-rules.ts";
import { messageOf } from "../shared/errors.ts";
import type { Store } from "../store/store.ts";
import { autoscalerDesired } from "../shared/metrics.ts";
import { autoscale } from "./autoscale.ts";
import type { EventRecorder } from "./event-recorder.ts";
import { BY_SERVICE, type ControllerInformers, informersFor } from "./informers.ts";
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
 * Services to machines: keeps `desired` machines of the service's current image running.
 * Scaling, replacing failed machines (with back-off) and replacing machines of an old image
 * (new machines first, old ones retired only as new ones are ready) are one computation.
 */
export class ServiceReconciler implements Reconciler {
  readonly name = "services";
  readonly watches: Kind[] = ["Service", "Machine"];

  constructor(
    private readonly store: Store,
    private readonly events: EventRecorder,
    private readonly load?: LoadBoard,
    /** The clock back-off, stability and autoscaling are measured with (tests drive their own). */
    private readonly now: () => number = Date.now,
    private readonly informers: ControllerInformers = informersFor(store),
  ) {}

  keysFor(event: ChangeEvent): (string | { key: string; afterMs: number })[] {
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
    let desired = declaredReplicas(service.spec);
    let autoscaleState: ServiceStatus["autoscale"];
    let requeueAfterMs: number | undefined;
    if (isAutoscaled(service.spec)) {
      const decision = autoscale(service.spec, service.status.autoscale, this.load?.get(name), this.now());
      autoscaleState = decision.state;
      desired = decision.state.desired;
      autoscalerDesired.set({ service: name }, desired);
      if (decision.change) await this.events.record({ kind: "Service", name }, "Normal", decision.change.startsWith("scaled up") ? "ScaledUp" : "ScaledDown", decision.change);
      // Idle periods and cooldowns end without any event to say so: look again soon.
      if (desired > (service.spec.min ?? 0) || decision.state.pressureSince) requeueAfterMs = 1000;
    }
    const surge = service.spec.update?.maxSurge ?? 1;
    const unavailable = service.spec.update?.maxUnavailable ?? 0;
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
    const current = healthy.filter((m) => m.spec.image === digest);
    const outdated = healthy.filter((m) => m.spec.image !== digest);
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
      else for (let i = 0; i < wanted; i++) await this.createMachine(service, digest, image.spec.memoryMiB, image.spec.vcpus, imageSource?.pinned ?? image.spec.source);
    }
    // Old-image machines: those not ready serve nobody and go now; ready ones go only while
    // enough ready machines remain (desired - maxUnavailable), so a new image that never gets
    // ready leaves the old machines serving.
    let readyTotal = current.filter(isReady).length + outdated.filter(isReady).length;
    for (const m of outdated) {
      if (isReady(m)) {
        if (readyTotal - 1 < desired - unavailable) continue;
        readyTotal--;
      }
      await this.retire(m, "Replaced", `replaced by machines of ${digest.slice(0, 19)}`);
    }

    const readyCurrent = current.filter(isReady).length;
    // The back-off is forgiven only once the machines have stayed up: one that gets ready and
    // dies a moment later is the crash loop itself.
    const stable = current.filter((m) => isReady(m) && m.status.readyAt && this.now() - Date.parse(m.status.readyAt) >= STABLE_AFTER_MS).length;
    if (crashLoop && stable >= desired && desired > 0) crashLoop = undefined;
    else if (crashLoop && readyCurrent >= desired) requeueAfterMs = Math.min(requeueAfterMs ?? STABLE_AFTER_MS, STABLE_AFTER_MS);
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
    };
    await this.setStatus(service, status);
    return requeueAfterMs !== undefined ? { requeueAfterMs } : undefined;
  }

  private async setStatus(service: Service, status: ServiceStatus): Promise<void> {
    if (!sameJson(service.status, status)) await writeBack(this.store, service, { status });
  }

  /** `source`: where a node lacking the image pulls it (`registry/repo@sha256:...`). */
  private async createMachine(service: Service, digest: string, memoryMiB: number, vcpus: number, source?: string): Promise<void> {
    const name = `${service.metadata.name}-${randomBytes(3).toString("hex")}`;
    await this.store.create<Machine>({
      apiVersion: API_VERSION,
      kind: "Machine",
      metadata: { name, labels: { [SERVICE_LABEL]: service.metadata.name } },
      spec: { service: service.metadata.name, image: digest, ...(source ? { imageSource: source } : {}), memoryMiB, vcpus, env: service.spec.env ?? {}, ...(service.spec.startMode ? { startMode: service.spec.startMode } : {}), desiredState: "running" },
      status: { phase: "pending" },
    });
    await this.events.record({ kind: "Service", name: service.metadata.name }, "Normal", "MachineCreated", `created machine ${name}`);
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
