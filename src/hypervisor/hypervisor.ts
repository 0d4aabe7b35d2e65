import type { ImageRecord } from "../image/image.ts";
import type { JailStatus } from "../model/kinds.ts";

/**
 * A hypervisor driver runs images as machines. QEMU (KVM or TCG) is the one that boots real
 * machines; others (Firecracker, Cloud Hypervisor, a fake for controller tests) implement the
 * same interface and pass the same contract suite.
 */
export interface Hypervisor {
  readonly name: string;
  start(spec: MachineSpec): Promise<Machine>;
  /**
   * The driver's machines already running on this host (after an agent restart), re-attached:
   * those with the given saved handles (pids), or, without handles, all that can be found.
   */
  recover(pids?: number[]): Promise<Machine[]>;
  /**
   * What a snapshot saved here depends on besides the image and its shape (the hypervisor's
   * version, the accelerator): a snapshot is restored only where this is the same.
   */
  snapshotTag(): Promise<string>;
  /** The parts of the jail this host cannot give machines, and why (none: fully confined). */
  jailMissing?(): Promise<string[]>;
}

export interface MachineSpec {
  /** Unique per machine; names its state directory and its QEMU process. */
  id: string;
  image: ImageRecord;
  /** The unpacked kernel and initramfs to boot, and the image's read-only runtime disk if it has one. */
  kernel: string;
  initrd: string;
  disk?: string;
  /**
   * A file for each of the image's declared volumes, in its order (the volume's name checks
   * the pairing). Each is attached read-write to this machine alone; a start is refused if
   * another machine on this host holds one.
   */
  volumes?: VolumeAttachment[];
  /** Console log, sockets and pid file live here. */
  stateDir: string;
  /** Overrides and additions to the image's env, delivered at boot. */
  env?: Record<string, string>;
  /**
   * The keyed hash of each env value that came from a Secret. Anything that identifies the env
   * by a hash (snapshot keys) uses these instead of the values, which are sent to the guest and
   * nowhere else.
   */
  secretHashes?: Record<string, string>;
  /** Host port for a listen port; a free one is chosen for each port not given. */
  hostPorts?: Record<number, number>;
  /**
   * Start from this snapshot (a file Machine.saveSnapshot wrote for the same image and shape)
   * instead of booting: the machine resumes ready, then takes this spec's id, env and entropy.
   * Rejects, leaving nothing running, if the file cannot be restored.
   */
  restoreFrom?: string;
  /**
   * This machine is booted only to be snapshotted, never to serve. Its guest clock runs two
   * hours behind, so every machine restored from it sees time move back and forth over the
   * reseed intervals of userspace generators (OpenSSL's), which then reseed from the kernel.
   */
  snapshotSource?: boolean;
  /**
   * With restoreFrom: a machine for a warm pool (src/snapshot/warm-pool.ts). Its clock runs behind
   * like a snapshot source's, so the identity it is given later moves time forward over OpenSSL's
   * reseed interval; it is warmed up, then paused, and serves only once claimed (Machine.claim).
   */
  warmPool?: boolean;
}

/** What a warm machine becomes when it is claimed: the machine it now is. */
export interface ClaimedIdentity {
  /** The new machine's id (its Machine object's name). */
  id: string;
  /** The machine's env, as MachineSpec.env: it must be the env the pool's machine was made with. */
  env?: Record<string, string>;
}

export interface VolumeAttachment {
  /** The volume's name in the image's manifest. */
  name: string;
  /** The volume's ext4 file on this host (see src/volume/volume-file.ts). */
  path: string;
}

/** Milliseconds spent in each stage of a boot; a stage not reached yet is absent. */
export interface BootTimings {
  /** Hypervisor process start and firmware, until the kernel starts. */
  vmmMs?: number;
  /** Kernel start until init runs. */
  kernelMs?: number;
  /** Init: mounts and runtime config, until the app is executed. */
  initMs?: number;
  /** The app's own start, until it is ready. */
  appMs?: number;
  /** From asking for the machine until it is ready. */
  readyMs?: number;
  /** A restored machine: starting the hypervisor and loading the snapshot, until the guest runs. */
  restoreMs?: number;
}

export interface SnapshotSaved {
  bytes: number;
  /** How long the machine was paused writing it. */
  ms: number;
}

export interface MachineExit {
  /** The app's exit code as reported by init; undefined when the machine died without one. */
  code: number | undefined;
  reason: string;
}

export interface PortForward {
  guestPort: number;
  hostPort: number;
  /** Where the port is reachable from the host. */
  url: string;
}

export interface Machine {
  readonly id: string;
  readonly pid: number;
  readonly accelerator: "kvm" | "tcg";
  readonly ports: PortForward[];
  readonly consoleLog: string;
  readonly timings: Readonly<BootTimings>;
  /** Booted, or restored from a snapshot. */
  readonly startedFrom: "boot" | "snapshot";
  /** What confines its VMM on this host; absent for drivers that run no VMM. */
  readonly jail?: JailStatus;
  /** How the machine ended, once it has. */
  readonly exit: MachineExit | undefined;
  /** Resolves when the app is ready; rejects if the machine ends first or misses its readiness timeout. */
  whenReady(): Promise<BootTimings>;
  whenExited(): Promise<MachineExit>;
  /** Lets go of the machine without stopping it (an agent shutting down), so another can attach. */
  detach(): void;
  /** Asks the app to stop (SIGTERM through init), then forces the machine off after `graceMs`. */
  stop(graceMs?: number): Promise<MachineExit>;
  /**
   * Pauses the machine for good and writes its whole state (memory and devices) to `file`,
   * which a later start restores from (MachineSpec.restoreFrom). Meant for a machine started as
   * a snapshotSource, with no connections open; stop it afterwards. A driver may first have the
   * guest rehearse the restore handshake (QEMU's does, see QemuMachine.rehearseRestore).
   */
  saveSnapshot(file: string): Promise<SnapshotSaved>;
  /**
   * Pauses the guest (QMP `stop`): it runs no instruction until claimed. For warm-pool machines,
   * with no connection open. Drivers without pausing leave it out, and get no warm pool.
   */
  pause?(): Promise<void>;
  /**
   * Gives a paused warm machine its identity (`id`, the env with it, a fresh clock and seed: the
   * restore handshake) and lets it run. `whenReady()` then resolves once the app has taken the
   * identity; `id` is the new one from the call on.
   */
  claim?(identity: ClaimedIdentity): Promise<void>;
}
