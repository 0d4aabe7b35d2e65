import { Type, type Static, type TSchema } from "@sinclair/typebox";
import { IMAGE_REFERENCE_PATTERN, IMAGE_REFERENCE_RULE } from "../../image/image-reference.ts";
import { PINNED_REFERENCE_PATTERN, REGISTRY_REFERENCE_PATTERN, REGISTRY_REFERENCE_RULE } from "../../registry/registry-reference.ts";
import type { Kind } from "../../model/resource.ts";
import {
  MACHINE_PHASES,
  type EventSpec,
  type ImageSpec,
  type MachineSpec,
  type MachineStatus,
  type NodeSpec,
  type NodeStatus,
  type SecretSpec,
  type ServiceSpec,
  type ServiceStatus,
  type VolumeSpec,
  type VolumeStatus,
} from "../../model/kinds.ts";
import { MAX_WARM_MACHINES } from "../../model/service-rules.ts";
import { MAX_VOLUME_MIB, MAX_VOLUMES, MIN_VOLUME_MIB, VOLUME_NAME_PATTERN } from "../../model/volume-rules.ts";
import type { ErrorDetail } from "../api-error.ts";
import { refine } from "./problems.ts";
import { machineSpecRules, nodeSpecRules, secretSpecRules, serviceSpecRules } from "./rules.ts";
import { closed, EnvMap, Enum, inputSchema, NonNegativeInt, resourceSchema } from "./common.ts";
import { SecretKeyRefSchema, SecretSpecSchema, ServiceEnvMap } from "./secrets.ts";

/**
 * Spec and status schemas for every kind, mirroring src/model/kinds.ts field for field (the
 * `Same<...>` checks at the bottom fail to compile when the two drift apart). Specs carry the
 * value rules; statuses only shapes, as agents and controllers write them piecemeal, so every
 * status field is optional.
 */
export const Replicas = NonNegativeInt({ maximum: 1000 });
const MemoryMiB = Type.Integer({ minimum: 16, maximum: 16384 });
const Vcpus = Type.Integer({ minimum: 1, maximum: 8 });
const NonEmpty = Type.String({ minLength: 1, maxLength: 253 });
/** An object's name as another object refers to it, or an image name or digest. */
const Reference = (description?: string) => Type.String({ minLength: 1, maxLength: 253, ...(description ? { description } : {}) });
const Host = Type.String({ minLength: 1, maxLength: 253, pattern: "^[^\\s/,\\u0000-\\u001f]+$", errorMessage: "must be a host name (1-253 characters, no spaces, '/' or ',')" });
const Timestamp = Type.String({ description: "RFC 3339 time" });
const Accelerator = Enum(["kvm", "tcg"] as const);
const StartMode = Enum(["boot", "snapshot"] as const);
/** `registry/repo@sha256:...`: an image pinned in a registry. */
const PinnedSource = Type.String({ maxLength: 253, pattern: PINNED_REFERENCE_PATTERN, errorMessage: "must be REGISTRY[:PORT]/REPO@sha256:<64 hex>" });

export const ServiceSpecSchema = Type.Object(
  {
    image: Type.String({
      maxLength: 253,
      pattern: `${IMAGE_REFERENCE_PATTERN}|${REGISTRY_REFERENCE_PATTERN}`,
      errorMessage: `${IMAGE_REFERENCE_RULE}, or ${REGISTRY_REFERENCE_RULE}`,
      description: "an image name (its latest build), digest or digest prefix, or a registry reference",
    }),
    replicas: Type.Optional(Replicas),
    min: Type.Optional(Replicas),
    max: Type.Optional(Replicas),
    env: Type.Optional(ServiceEnvMap),
    hosts: Type.Optional(Type.Array(Host, { maxItems: 64 })),
    startMode: Type.Optional({ ...StartMode, description: "boot (default), or restore machines from a snapshot of a ready one" }),
    warm: Type.Optional(NonNegativeInt({ maximum: MAX_WARM_MACHINES, description: "with startMode snapshot: machines each node keeps restored, warmed up and paused for this service (each holds its RAM)" })),
    update: Type.Optional(
      Type.Object({ strategy: Type.Literal("rolling"), maxSurge: NonNegativeInt(), maxUnavailable: NonNegativeInt() }, closed),
    ),
    autoscale: Type.Optional(
      Type.Object(
        {
          targetInFlight: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
          cooldownSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })),
          idleSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400 })),
        },
        closed,
      ),
    ),
    restartedAt: Type.Optional({ ...Timestamp, description: "set by `pith rollout restart`; changing it replaces every machine" }),
    volumes: Type.Optional({ ...Enum(["perMachine", "single"] as const), description: "perMachine (default): a Volume per machine index; single: one shared Volume, at most one machine" }),
  },
  { ...closed, description: "replicas, or min/max (not both); env names starting with PITH_ are reserved" },
);

const RevisionSchema = Type.Object(
  {
    revision: NonNegativeInt(),
    templateHash: Type.String({ maxLength: 64 }),
    image: Type.String({ maxLength: 253 }),
    env: Type.Optional(ServiceEnvMap),
    startMode: Type.Optional(StartMode),
    restartedAt: Type.Optional(Timestamp),
    createdAt: Timestamp,
  },
  { ...closed, description: "a machine template the service rolled out" },
);

const PhaseCount = Type.Optional(NonNegativeInt());
const PhaseCounts = Type.Object(
  { pending: PhaseCount, booting: PhaseCount, ready: PhaseCount, draining: PhaseCount, stopped: PhaseCount, failed: PhaseCount },
  closed,
);

export const ServiceStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(NonNegativeInt()),
    imageDigest: Type.Optional(Type.String()),
    imageSource: Type.Optional(Type.Object({ reference: Type.String({ maxLength: 253 }), pinned: PinnedSource }, closed)),
    desired: Type.Optional(NonNegativeInt()),
    ready: Type.Optional(NonNegativeInt()),
    phases: Type.Optional(PhaseCounts),
    crashLoop: Type.Optional(
      Type.Object({ failures: NonNegativeInt(), lastReason: Type.String(), nextAttemptAt: Timestamp }, closed),
    ),
    autoscale: Type.Optional(
      Type.Object({ desired: NonNegativeInt(), lastScaleAt: Timestamp, lastActiveAt: Type.Optional(Timestamp), pressureSince: Type.Optional(Timestamp) }, closed),
    ),
    message: Type.Optional(Type.String()),
    templateHash: Type.Optional(Type.String({ maxLength: 64 })),
    updated: Type.Optional(NonNegativeInt()),
    revision: Type.Optional(NonNegativeInt()),
    revisions: Type.Optional(Type.Array(RevisionSchema, { maxItems: 32 })),
  },
  closed,
);

export const MachineSpecSchema = Type.Object(
  {
    service: Type.Optional(Type.String({ maxLength: 253 })),
    image: Reference("an image digest"),
    imageSource: Type.Optional(PinnedSource),
    node: Type.Optional(Type.String({ maxLength: 253 })),
    memoryMiB: MemoryMiB,
    vcpus: Vcpus,
    env: Type.Optional(EnvMap),
    secretEnv: Type.Optional(Type.Record(Type.String(), SecretKeyRefSchema, { ...closed, maxProperties: 128 })),
    startMode: Type.Optional(StartMode),
    desiredState: Enum(["running", "stopped"] as const),
    volumes: Type.Optional(Type.Array(Type.Object({ name: Type.String({ pattern: VOLUME_NAME_PATTERN }), volume: Reference("a Volume's name") }, closed), { maxItems: MAX_VOLUMES })),
  },
  closed,
);

const JailStatusSchema = Type.Object(
  {
    uid: Type.Optional(Type.Integer({ minimum: 0 })),
    gid: Type.Optional(Type.Integer({ minimum: 0 })),
    cgroup: Type.Optional(Type.String({ maxLength: 4096 })),
    limits: Type.Optional(Type.Object({ memoryBytes: NonNegativeInt(), pids: NonNegativeInt(), cpus: Type.Number({ minimum: 0 }) }, closed)),
    seccomp: Type.Boolean(),
    mountNamespace: Type.Boolean(),
    networkNamespace: Type.Boolean(),
    missing: Type.Array(Type.String({ maxLength: 1024 }), { maxItems: 32 }),
  },
  { ...closed, description: "what confines the machine's VMM on its host" },
);

export const MachineStatusSchema = Type.Object(
  {
    phase: Type.Optional(Enum(MACHINE_PHASES)),
    reason: Type.Optional(Type.String()),
    node: Type.Optional(Type.String()),
    pid: Type.Optional(Type.Integer()),
    accelerator: Type.Optional(Accelerator),
    startedFrom: Type.Optional(StartMode),
    addresses: Type.Optional(
      Type.Array(Type.Object({ guestPort: Type.Integer(), hostPort: Type.Integer(), url: Type.String() }, closed)),
    ),
    jail: Type.Optional(JailStatusSchema),
    timings: Type.Optional(
      Type.Object(
        {
          vmmMs: Type.Optional(Type.Number()),
          kernelMs: Type.Optional(Type.Number()),
          initMs: Type.Optional(Type.Number()),
          appMs: Type.Optional(Type.Number()),
          readyMs: Type.Optional(Type.Number()),
          restoreMs: Type.Optional(Type.Number()),
        },
        closed,
      ),
    ),
    pull: Type.Optional(
      Type.Object(
        { source: Type.String({ maxLength: 253 }), bytes: NonNegativeInt(), totalBytes: NonNegativeInt(), ms: Type.Optional(Type.Number({ minimum: 0 })) },
        { ...closed, description: "the image's pull from its registry, when the node lacked it" },
      ),
    ),
    exitCode: Type.Optional(Type.Integer()),
    startedAt: Type.Optional(Timestamp),
    readyAt: Type.Optional(Timestamp),
    stoppedAt: Type.Optional(Timestamp),
  },
  closed,
);

export const NodeSpecSchema = Type.Object(
  {
    capacity: Type.Object({ memoryMiB: NonNegativeInt(), vcpus: NonNegativeInt() }, closed),
    accelerator: Accelerator,
    address: Type.Optional(Type.String({ maxLength: 45, description: "a literal IP address where this node's machines are reachable" })),
    unschedulable: Type.Optional(Type.Boolean()),
    drain: Type.Optional(Type.Boolean()),
  },
  closed,
);

export const NodeStatusSchema = Type.Object(
  {
    heartbeatAt: Type.Optional(Timestamp),
    allocated: Type.Optional(
      Type.Object({ memoryMiB: NonNegativeInt(), vcpus: NonNegativeInt(), machines: NonNegativeInt() }, closed),
    ),
    ready: Type.Optional(Type.Boolean()),
    agentVersion: Type.Optional(Type.String()),
    jailMissing: Type.Optional(Type.Array(Type.String({ maxLength: 1024 }), { maxItems: 32 })),
    warm: Type.Optional(Type.Record(Type.String({ maxLength: 253 }), NonNegativeInt(), { maxProperties: 1024 })),
    warmMemoryMiB: Type.Optional(NonNegativeInt()),
  },
  closed,
);

export const ImageSpecSchema = Type.Object(
  {
    digest: NonEmpty,
    runtime: Enum(["node", "native"] as const),
    memoryMiB: MemoryMiB,
    vcpus: Vcpus,
    listen: Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { maxItems: 64 }),
    egress: Type.Array(Type.String({ maxLength: 261 }), { maxItems: 64 }),
    storedBytes: NonNegativeInt(),
    source: Type.Optional(PinnedSource),
    volumes: Type.Optional(Type.Array(Type.Object({
      name: Type.String({ pattern: VOLUME_NAME_PATTERN }),
      mount: Type.String({ minLength: 2, maxLength: 255 }),
      sizeMiB: Type.Integer({ minimum: MIN_VOLUME_MIB, maximum: MAX_VOLUME_MIB }),
    }, closed), { maxItems: MAX_VOLUMES })),
  },
  closed,
);

export const EventSpecSchema = Type.Object(
  {
    involved: Type.Object({ kind: NonEmpty, name: NonEmpty }, closed),
    type: Enum(["Normal", "Warning"] as const),
    reason: NonEmpty,
    message: Type.String({ maxLength: 16 * 1024 }),
    at: Timestamp,
  },
  closed,
);

export const VolumeSpecSchema = Type.Object(
  {
    sizeMiB: Type.Integer({ minimum: MIN_VOLUME_MIB, maximum: MAX_VOLUME_MIB, description: `size in MiB (${MIN_VOLUME_MIB} to ${MAX_VOLUME_MIB})` }),
    node: Type.Optional(Type.String({ maxLength: 253, description: "the node holding its file (set when first attached)" })),
  },
  { ...closed, description: "a writable ext4 disk, attached read-write to at most one machine at a time" },
);

export const VolumeStatusSchema = Type.Object(
  {
    attachedTo: Type.Optional(Type.String({ maxLength: 253 })),
    node: Type.Optional(Type.String({ maxLength: 253 })),
    created: Type.Optional(Type.Boolean()),
    message: Type.Optional(Type.String({ maxLength: 4096 })),
  },
  closed,
);

/** Images and events have no status: an empty object. */
export const EmptyStatusSchema = Type.Object({}, closed);

export interface KindSchemas {
  spec: TSchema;
  status: TSchema;
  resource: TSchema;
  input: TSchema;
}

const kindSchemas = <K extends Kind>(kind: K, spec: TSchema, status: TSchema, rules?: (spec: never) => ErrorDetail[]): KindSchemas => {
  const input = inputSchema(kind, spec, status);
  // Rules run only on a body that matched the schema, so its spec has the schema's shape.
  if (rules) refine(input, (body) => rules((body as { spec: never }).spec));
  return { spec, status, resource: resourceSchema(kind, spec, status), input };
};

export const KIND_SCHEMAS: Record<Kind, KindSchemas> = {
  Service: kindSchemas("Service", ServiceSpecSchema, ServiceStatusSchema, (spec: ServiceSpec) => serviceSpecRules(spec)),
  Machine: kindSchemas("Machine", MachineSpecSchema, MachineStatusSchema, (spec: MachineSpec) => machineSpecRules(spec)),
  Node: kindSchemas("Node", NodeSpecSchema, NodeStatusSchema, (spec: NodeSpec) => nodeSpecRules(spec)),
  Image: kindSchemas("Image", ImageSpecSchema, EmptyStatusSchema),
  Event: kindSchemas("Event", EventSpecSchema, EmptyStatusSchema),
  Secret: kindSchemas("Secret", SecretSpecSchema, EmptyStatusSchema, (spec: SecretSpec) => secretSpecRules(spec)),
  Volume: kindSchemas("Volume", VolumeSpecSchema, VolumeStatusSchema),
};

// Compile-time proof that the schemas describe exactly the model's types.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const same = <T extends true>(): T | undefined => undefined;
same<Same<Static<typeof ServiceSpecSchema>, ServiceSpec>>();
same<Same<Static<typeof ServiceStatusSchema>, ServiceStatus>>();
same<Same<Static<typeof MachineSpecSchema>, MachineSpec>>();
same<Same<Static<typeof MachineStatusSchema>, Partial<MachineStatus>>>();
same<Same<Static<typeof NodeSpecSchema>, NodeSpec>>();
same<Same<Static<typeof NodeStatusSchema>, NodeStatus>>();
same<Same<Static<typeof ImageSpecSchema>, ImageSpec>>();
same<Same<Static<typeof EventSpecSchema>, EventSpec>>();
same<Same<Static<typeof SecretSpecSchema>, SecretSpec>>();
same<Same<Static<typeof VolumeSpecSchema>, VolumeSpec>>();
same<Same<Static<typeof VolumeStatusSchema>, VolumeStatus>>();
