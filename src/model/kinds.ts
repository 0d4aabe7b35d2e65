import type { Resource } from "./resource.ts";

/** A declared service: run this image as this many machines, and keep it that way. */
export interface ServiceSpec {
  /**
   * An image name (its latest build) or digest, or a registry reference
   * (`registry/repo:tag` or `registry/repo@sha256:...`, see src/registry/).
   */
  image: string;
  /** Fixed machine count; or min/max for scale-to-zero and autoscaling (the proxy's issue). */
  replicas?: number;
  min?: number;
  max?: number;
  /** Added to (and overriding) the image's env for every machine: a value, or a Secret's key. */
  env?: Record<string, EnvValue>;
  /** Host names the proxy routes to this service. */
  hosts?: string[];
  update?: { strategy: "rolling"; maxSurge: number; maxUnavailable: number };
  /**
   * How machines start: `boot` (the default) from the image, or `snapshot`: restored from a
   * snapshot of a ready machine of the same image, shape and env (made on first use).
   */
  startMode?: StartMode;
  /**
   * With startMode snapshot: how many machines each node keeps restored, warmed up and paused for
   * this service (its warm pool, see src/snapshot/warm-pool.ts). A new machine takes one of them
   * instead of restoring. Each holds its RAM while paused.
   */
  warm?: number;
  /**
   * With min/max: how many machines follow load. `targetInFlight` requests per machine;
   * scale down only after `cooldownSeconds` without a change; with min 0, stop every machine after
   * `idleSeconds` without a request (the proxy holds the next request while one boots).
   */
  autoscale?: { targetInFlight?: number; cooldownSeconds?: number; idleSeconds?: number };
  /** Set by `pith rollout restart`: part of the machine template, so changing it rolls every machine. */
  restartedAt?: string;
  /**
   * With an image that declares volumes: `perMachine` (the default) gives each machine index its
   * own Volumes, `<service>-<volume>-<index>`; `single` shares `<service>-<volume>` and runs at
   * most one machine. Either way a volume's machine is replaced stop-then-start, never surged.
   */
  volumes?: "perMachine" | "single";
}

/** An env value read from a Secret's key when the machine starts; the Service and Machine hold only this reference. */
export interface SecretKeyRef {
  name: string;
  key: string;
}
export type EnvValue = string | { secretRef: SecretKeyRef };
export const isSecretRef = (value: EnvValue | undefined): value is { secretRef: SecretKeyRef } => typeof value === "object" && value !== null;

/** One template a service's machines were made from, kept so `pith rollout undo` can return to it. */
export interface ServiceRevision {
  revision: number;
  templateHash: string;
  /** The image digest the service's image resolved to. */
  image: string;
  env?: Record<string, EnvValue>;
  startMode?: StartMode;
  restartedAt?: string;
  createdAt: string;
}

/**
 * Values kept encrypted, used from a Service's env by `secretRef`. Write-only: a client sends
 * `stringData`; the API stores each value sealed (AES-256-GCM) and answers with `keys`, a keyed
 * hash per key, never a value. `sealed` is the server's own and never leaves it.
 */
export interface SecretSpec {
  stringData?: Record<string, string>;
  keys?: Record<string, { hash: string }>;
  sealed?: Record<string, string>;
}
export interface ServiceStatus {
  observedGeneration?: number;
  /** The digest `spec.image` resolved to. */
  imageDigest?: string;
  /**
   * For a registry reference: `spec.image` as resolved, pinned to its manifest digest. A tag is
   * resolved once per `spec.image` text, so every machine of the service runs the same bytes.
   */
  imageSource?: { reference: string; pinned: string };
  desired?: number;
  ready?: number;
  /** Machines of this service by phase. */
  phases?: Partial<Record<MachinePhase, number>>;
  /** Set while failed machines are being replaced with back-off. */
  crashLoop?: { failures: number; lastReason: string; nextAttemptAt: string };
  /** The autoscaler's decision (services with min/max), kept here so a restart keeps it. */
  autoscale?: { desired: number; lastScaleAt: string; lastActiveAt?: string; pressureSince?: string };
  message?: string;
  /** The hash of the machine template the service wants now (model/machine-template.ts). */
  templateHash?: string;
  /** Machines of that template that are not being retired. */
  updated?: number;
  /** The current revision's number, and the templates rolled out, newest first (bounded). */
  revision?: number;
  revisions?: ServiceRevision[];
}

export type StartMode = "boot" | "snapshot";

export const MACHINE_PHASES = ["pending", "booting", "ready", "draining", "stopped", "failed"] as const;
export type MachinePhase = (typeof MACHINE_PHASES)[number];

/** One VM of a service's image. Created by the service controller, placed by the scheduler. */
export interface MachineSpec {
  service?: string;
  /** Image digest (always a digest: a machine never changes image). */
  image: string;
  /** Where a node that lacks the image pulls it: `registry/repo@sha256:<manifest digest>`. */
  imageSource?: string;
  /** The node it runs on; empty until scheduled. */
  node?: string;
  memoryMiB: number;
  vcpus: number;
  env?: Record<string, string>;
  /** Env values the agent reads from Secrets when it starts the machine (never stored here). */
  secretEnv?: Record<string, SecretKeyRef>;
  /** From the service: boot, or restore from a snapshot (which falls back to booting). */
  startMode?: StartMode;
  /** "running" until the controller wants it gone; the agent stops it, then deletes the object. */
  desiredState: "running" | "stopped";
  /** The Volume attached for each volume the image declares, in the image's order. */
  volumes?: { name: string; volume: string }[];
}

/** What confines a machine's VMM on its host (see src/jail/), as its agent found it. */
export interface JailStatus {
  uid?: number;
  gid?: number;
  /** The machine's cgroup, as /proc/PID/cgroup names it, and its limits. */
  cgroup?: string;
  limits?: { memoryBytes: number; pids: number; cpus: number };
  /** QEMU's seccomp filter is on. */
  seccomp: boolean;
  /** The VMM sees a private read-only root holding only its own files. */
  mountNamespace: boolean;
  /** The VMM is in a network namespace with nothing in it. */
  networkNamespace: boolean;
  /** Each part of the jail this host could not give, and why. */
  missing: string[];
}

export interface MachineStatus {
  phase: MachinePhase;
  reason?: string;
  node?: string;
  pid?: number;
  accelerator?: "kvm" | "tcg";
  /** How it actually started (a snapshot that cannot be used means a boot). */
  startedFrom?: StartMode;
  addresses?: { guestPort: number; hostPort: number; url: string }[];
  jail?: JailStatus;
  timings?: { vmmMs?: number; kernelMs?: number; initMs?: number; appMs?: number; readyMs?: number; restoreMs?: number };
  /** The image's pull from its registry, when this node lacked it. */
  pull?: MachinePull;
  exitCode?: number;
  startedAt?: string;
  readyAt?: string;
  stoppedAt?: string;
}

export interface MachinePull {
  source: string;
  /** Bytes received of the layers' total. */
  bytes: number;
  totalBytes: number;
  /** Set once the pull is done (verified and stored): how long it took. */
  ms?: number;
}

export interface NodeSpec {
  capacity: { memoryMiB: number; vcpus: number };
  accelerator: "kvm" | "tcg";
  /**
   * The address other hosts reach this node's machines at (a literal IP its agent was given with
   * --address): forwards bind there, and proxies dial it. Absent: loopback only (one host).
   */
  address?: string;
  /** Cordoned: the scheduler places no new machine here (`pith cordon`). Written by admins only. */
  unschedulable?: boolean;
  /** Draining: its machines are replaced elsewhere, then stopped (`pith drain`). Written by admins only. */
  drain?: boolean;
}

export interface NodeStatus {
  heartbeatAt?: string;
  /** Resources claimed by machines placed here. */
  allocated?: { memoryMiB: number; vcpus: number; machines: number };
  ready?: boolean;
  agentVersion?: string;
  /** The parts of the jail this node cannot give its machines (empty: all of it). */
  jailMissing?: string[];
  /** Paused warm machines this node holds, by service (see ServiceSpec.warm). */
  warm?: Record<string, number>;
  /**
   * The memory its warm machines hold, ready or being made: no Machine object claims it, so the
   * scheduler counts it as taken (less a warm machine the placed machine takes over).
   */
  warmMemoryMiB?: number;
}

/** An image known to the control plane (registered when built or applied). */
export interface ImageSpec {
  digest: string;
  runtime: "node" | "native";
  memoryMiB: number;
  vcpus: number;
  listen: number[];
  egress: string[];
  storedBytes: number;
  /** For an image from a registry: where nodes pull it, `registry/repo@sha256:<manifest digest>`. */
  source?: string;
  /** Declared volumes: a service's machines get one Volume each per declared volume. */
  volumes?: { name: string; mount: string; sizeMiB: number }[];
}

/** Something that happened to an object, for `pith describe`. */
export interface EventSpec {
  involved: { kind: string; name: string };
  type: "Normal" | "Warning";
  reason: string;
  message: string;
  at: string;
}

/**
 * A volume: a writable ext4 disk kept across machines, a file on one node (src/volume/). It is
 * attached read-write to at most one machine at a time, recorded here by the node's agent.
 */
export interface VolumeSpec {
  sizeMiB: number;
  /** The node whose disk holds its file; set when first attached, then fixed (the data is there). */
  node?: string;
}

export interface VolumeStatus {
  /** The one machine holding it read-write; absent: free. */
  attachedTo?: string;
  node?: string;
  /** Its file exists on `node`. */
  created?: boolean;
  message?: string;
}

export type Service = Resource<"Service", ServiceSpec, ServiceStatus>;
export type Machine = Resource<"Machine", MachineSpec, MachineStatus>;
export type PithNode = Resource<"Node", NodeSpec, NodeStatus>;
export type Image = Resource<"Image", ImageSpec, Record<string, never>>;
export type PithEvent = Resource<"Event", EventSpec, Record<string, never>>;
export type Secret = Resource<"Secret", SecretSpec, Record<string, never>>;
export type Volume = Resource<"Volume", VolumeSpec, VolumeStatus>;
