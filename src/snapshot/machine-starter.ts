import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Hypervisor, Machine, MachineSpec } from "../hypervisor/hypervisor.ts";
import { withFileLock } from "../shared/file-lock.ts";
import { machinesDir } from "../shared/paths.ts";
import { envKey, SnapshotStore, type StoredSnapshot } from "./snapshot-store.ts";
import { warmUp } from "./warm-up.ts";
import { ensurePrivateDir } from "../shared/private-files.ts";
import { userError } from "../shared/errors.ts";

/** How a machine is started: booted from its image, or restored from a snapshot of one. */
export type StartMode = "boot" | "snapshot";

/** Something worth an event on the machine: snapshots made, restores that fell back. */
export interface StartNotice {
  type: "Normal" | "Warning";
  reason: "SnapshotCreated" | "SnapshotRestored" | "SnapshotInvalid" | "SnapshotRestoreFailed" | "SnapshotFailed" | "WarmMachineClaimed";
  message: string;
}

export interface MachineStarterOptions {
  hypervisor: Hypervisor;
  /** Default: the local image store's snapshots. */
  store?: SnapshotStore;
  /** Where snapshot sources keep their console and sockets while they run; default under the machines dir. */
  scratchDir?: string;
  /** Requests sent to a snapshot source before it is saved (see warm-up.ts); default 8. */
  warmUpRequests?: number;
}

/**
 * Starts machines in their service's start mode. In snapshot mode a machine is restored from
 * the snapshot of its image and shape; without one, a private source machine is booted, warmed
 * up, saved and stopped first (once per snapshot, however many machines ask at once), then
 * restored from. A snapshot that fails its checks or does not restore is removed and the
 * machine boots instead: a snapshot can make a start faster, never make it fail.
 */
export class MachineStarter {
  private readonly creating = new Map<string, Promise<StoredSnapshot>>();
  private readonly hypervisor: Hypervisor;
  private readonly store: SnapshotStore;
  private readonly scratchDir: string;

  constructor(private readonly options: MachineStarterOptions) {
    this.hypervisor = options.hypervisor;
    this.store = options.store ?? new SnapshotStore();
    this.scratchDir = options.scratchDir ?? join(machinesDir(), ".snapshot-sources");
  }

  /** `signal`: stop taking further steps (a fallback boot, a restore) once it is aborted. */
  async start(spec: MachineSpec, mode: StartMode, notify: (notice: StartNotice) => void = () => {}, signal?: AbortSignal): Promise<Machine> {
    const { hypervisor, store } = this;
    const launch = (s: MachineSpec): Promise<Machine> => {
      signal?.throwIfAborted();
      return hypervisor.start(s);
    };
    if (mode === "boot") return launch(spec);
    refuseVolumes(spec);

    const tag = await hypervisor.snapshotTag();
    let snapshot = await store.find(spec.image, tag, keyedEnv(spec));
    if (snapshot) {
      if (!(await this.keepIfValid(snapshot, notify, "; booting instead"))) return launch(spec);
    } else {
      try {
        snapshot = await this.create(spec, tag, notify, signal);
      } catch (e) {
        notify({ type: "Warning", reason: "SnapshotFailed", message: `cannot make a snapshot of ${spec.image.name}: ${(e as Error).message}; booting instead` });
        return launch(spec);
      }
    }

    try {
      const machine = await launch({ ...spec, restoreFrom: snapshot.stateFile });
      await store.touch(snapshot);
      notify({ type: "Normal", reason: "SnapshotRestored", message: `restored from snapshot ${snapshot.record.key.slice(0, 12)} (${mib(snapshot.record.bytes)})` });
      return machine;
    } catch (e) {
      notify({ type: "Warning", reason: "SnapshotRestoreFailed", message: `snapshot ${snapshot.record.key.slice(0, 12)} of ${spec.image.name} did not restore and was removed: ${(e as Error).message}; booting instead` });
      await store.remove(snapshot);
      return launch(spec);
    }
  }

  /**
   * The usable snapshot for `spec` (its image, shape and env), made now if there is none or it
   * fails its checks: for `pith snapshots create`, ahead of the first start.
   */
  async prepare(spec: MachineSpec, notify: (notice: StartNotice) => void = () => {}): Promise<StoredSnapshot> {
    refuseVolumes(spec);
    const tag = await this.hypervisor.snapshotTag();
    const existing = await this.store.find(spec.image, tag, keyedEnv(spec));
    if (existing && (await this.keepIfValid(existing, notify, ""))) return existing;
    return this.create(spec, tag, notify);
  }

  /** Whether `snapshot` passes the store's checks; one that does not is removed, with a warning. */
  private async keepIfValid(snapshot: StoredSnapshot, notify: (notice: StartNotice) => void, consequence: string): Promise<boolean> {
    const verdict = await this.store.verify(snapshot);
    if (verdict.ok) return true;
    const { key, image } = snapshot.record;
    notify({ type: "Warning", reason: "SnapshotInvalid", message: `snapshot ${key.slice(0, 12)} of ${image.name} was removed: ${verdict.reason}${consequence}` });
    await this.store.remove(snapshot);
    return false;
  }

  /** Makes the snapshot for `spec`'s image, or waits for the one being made (here or by another process). */
  private create(spec: MachineSpec, tag: string, notify: (notice: StartNotice) => void, signal?: AbortSignal): Promise<StoredSnapshot> {
    const key = `${spec.image.digest} ${tag} ${envKey(keyedEnv(spec))}`;
    let pending = this.creating.get(key);
    if (!pending) {
      pending = this.createOnce(spec, tag, notify, signal).finally(() => this.creating.delete(key));
      this.creating.set(key, pending);
    }
    return pending;
  }

  private async createOnce(spec: MachineSpec, tag: string, notify: (notice: StartNotice) => void, signal?: AbortSignal): Promise<StoredSnapshot> {
    const { hypervisor, store, scratchDir } = this;
    const { image } = spec;
    const lock = join(scratchDir, `snapshot-${image.digest.replace(/^sha256:/, "").slice(0, 16)}.lock`);
    await ensurePrivateDir(scratchDir);
    return withFileLock(lock, async () => {
      const made = await store.find(image, tag, keyedEnv(spec)); // by another process while this one waited
      if (made && (await store.verify(made)).ok) return made;

      // Booted like the machine asked for (same files and env), but privately: it never serves.
      const id = `snapshot-source-${image.digest.replace(/^sha256:/, "").slice(0, 12)}-${process.pid}`;
      signal?.throwIfAborted();
      const source = await hypervisor.start({
        id,
        image,
        kernel: spec.kernel,
        initrd: spec.initrd,
        ...(spec.disk ? { disk: spec.disk } : {}),
        ...(spec.env ? { env: spec.env } : {}),
        stateDir: join(scratchDir, id),
        snapshotSource: true,
      });
      try {
        const timings = await source.whenReady();
        const warmed = await warmUp(source, image, this.options.warmUpRequests ?? 8);
        signal?.throwIfAborted();
        const saved = await store.save(image, tag, keyedEnv(spec), (file) => source.saveSnapshot(file));
        notify({
          type: "Normal",
          reason: "SnapshotCreated",
          message: `saved a snapshot of ${image.name}: ${mib(saved.record.bytes)} in ${saved.record.saveMs} ms, after a ${Math.round(timings.readyMs ?? 0)} ms boot and ${warmed} warm-up requests`,
        });
        return saved;
      } finally {
        await source.stop(0);
        await rm(join(scratchDir, id), { recursive: true, force: true });
      }
    });
  }
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/**
 * The env as snapshot keys see it: a value from a Secret is replaced by its keyed hash, so a key
 * (a file name, shown by `pith snapshots`) never hashes a secret value that a short guess could
 * be checked against, while a changed Secret still means another snapshot.
 */
export function keyedEnv(spec: Pick<MachineSpec, "env" | "secretHashes">): Record<string, string> | undefined {
  if (!spec.secretHashes || Object.keys(spec.secretHashes).length === 0) return spec.env;
  const env = { ...spec.env };
  for (const [name, hash] of Object.entries(spec.secretHashes)) env[name] = `secret:${hash}`;
  return env;
}

/**
 * Snapshots and volumes do not mix, so a snapshot start of an image with volumes is refused,
 * not quietly booted. A snapshot holds the guest's memory: its mounted filesystems' caches,
 * journal position and dirty pages of the source machine's volume. Restored over any other
 * volume, or over the same one after another machine wrote to it, that memory would write stale
 * metadata back and corrupt the filesystem; and every restore would share the source's volume.
 */
export function refuseVolumes(spec: Pick<MachineSpec, "image">): void {
  const volumes = spec.image.capabilities.volumes ?? [];
  if (volumes.length === 0) return;
  throw userError("SNAPSHOT_WITH_VOLUMES",
    `image ${spec.image.name} declares volumes (${volumes.map((v) => v.name).join(", ")}), and machines with volumes cannot start from a snapshot: the snapshot's memory holds the state of another machine's mounted filesystem`,
    "use startMode: boot for this service (or run without --snapshot)");
}
