import { createHash } from "node:crypto";
import { printable } from "./printable.ts";

/**
 * How a Pith image is laid out as an OCI artifact: an OCI image manifest whose config blob is the
 * image record (image.json, as stored) and whose layers are the stored gzip files, each with a
 * media type of Pith's own, so no container runtime mistakes it for a container image and Pith
 * refuses anything that is not one of its images.
 *
 * The manifest is written with a fixed key order, so pushing the same image twice gives the same
 * manifest digest.
 */
export const OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";
export const PITH_ARTIFACT_TYPE = "application/vnd.pith.image.v1";
export const PITH_CONFIG_MEDIA_TYPE = "application/vnd.pith.image.config.v1+json";

/** Each layer: its media type, the file it is in the image store, and whether every image has one. */
export const PITH_LAYERS = [
  { role: "kernel", mediaType: "application/vnd.pith.image.kernel.v1+gzip", file: "vmlinux.gz", required: true },
  { role: "rootfs", mediaType: "application/vnd.pith.image.rootfs.v1.cpio+gzip", file: "rootfs.cpio.gz", required: true },
  { role: "disk", mediaType: "application/vnd.pith.image.disk.v1.ext2+gzip", file: "runtime.ext2.gz", required: false },
] as const;
export type LayerRole = (typeof PITH_LAYERS)[number]["role"];

/** Annotation holding the Pith image digest (the record's hash), checked against the record on pull. */
export const IMAGE_DIGEST_ANNOTATION = "dev.pith.image.digest";

/**
 * Bounds on what a registry may make Pith hold or write. A manifest is small JSON (OCI asks
 * registries to accept 4 MiB); a record lists every file of the image; the layers are at most
 * what a machine could boot.
 */
export const LIMITS = {
  manifestBytes: 4 * 1024 * 1024,
  configBytes: 16 * 1024 * 1024,
  layerBytes: { kernel: 256 * 1024 * 1024, rootfs: 2 * 1024 * 1024 * 1024, disk: 8 * 1024 * 1024 * 1024 } satisfies Record<LayerRole, number>,
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface PithManifest {
  config: Descriptor;
  layers: (Descriptor & { role: LayerRole })[];
  /** The Pith digest the pusher claimed; the record's own hash is what counts. */
  imageDigest?: string;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

export const sha256Digest = (bytes: Uint8Array | string): string => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/** The manifest's bytes, as pushed: the same image always gives the same bytes. */
export function manifestBytes(config: Descriptor, layers: { role: LayerRole; digest: string; size: number }[], imageDigest: string): Buffer {
  const ordered = PITH_LAYERS.flatMap((kind) => layers.filter((l) => l.role === kind.role).map((l) => ({ mediaType: kind.mediaType, digest: l.digest, size: l.size })));
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      artifactType: PITH_ARTIFACT_TYPE,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
      layers: ordered,
      annotations: { [IMAGE_DIGEST_ANNOTATION]: imageDigest },
    }),
  );
}

/**
 * Reads a manifest a registry sent, strictly: an OCI image manifest holding a Pith config and
 * exactly Pith's layers (kernel and rootfs once each, the disk at most once), with well-formed
 * digests and sizes within LIMITS. Throws an Error saying what is wrong.
 */
export function parsePithManifest(bytes: Uint8Array): PithManifest {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw new Error("the manifest is not JSON");
  }
  if (!isObject(value)) throw new Error("the manifest is not a JSON object");
  if (value.schemaVersion !== 2) throw new Error("the manifest's schemaVersion is not 2");
  if (value.mediaType !== undefined && value.mediaType !== OCI_MANIFEST_MEDIA_TYPE) {
    throw new Error(`the manifest is a ${printable(String(value.mediaType))}, not an OCI image manifest (is this an image index or a container image?)`);
  }
  const config = descriptor(value.config, "config");
  if (config.mediaType !== PITH_CONFIG_MEDIA_TYPE) throw new Error(`the manifest's config is ${printable(config.mediaType)}, not a Pith image (${PITH_CONFIG_MEDIA_TYPE})`);
  if (config.size > LIMITS.configBytes) throw new Error(`the image record is ${config.size} bytes, more than the ${LIMITS.configBytes} allowed`);
  if (!Array.isArray(value.layers)) throw new Error("the manifest has no layers array");
  if (value.layers.length > PITH_LAYERS.length) throw new Error(`the manifest has ${value.layers.length} layers; a Pith image has at most ${PITH_LAYERS.length}`);
  const layers: PithManifest["layers"] = [];
  for (const [i, raw] of value.layers.entries()) {
    const layer = descriptor(raw, `layers[${i}]`);
    const kind = PITH_LAYERS.find((k) => k.mediaType === layer.mediaType);
    if (!kind) throw new Error(`layers[${i}] has media type ${printable(layer.mediaType)}, which is not one of Pith's`);
    if (layers.some((l) => l.role === kind.role)) throw new Error(`the manifest has two ${kind.role} layers`);
    if (layer.size > LIMITS.layerBytes[kind.role]) throw new Error(`the ${kind.role} layer is ${layer.size} bytes, more than the ${LIMITS.layerBytes[kind.role]} allowed`);
    layers.push({ ...layer, role: kind.role });
  }
  for (const kind of PITH_LAYERS) if (kind.required && !layers.some((l) => l.role === kind.role)) throw new Error(`the manifest has no ${kind.role} layer`);
  const annotated = isObject(value.annotations) ? value.annotations[IMAGE_DIGEST_ANNOTATION] : undefined;
  return { config, layers, ...(typeof annotated === "string" && DIGEST.test(annotated) ? { imageDigest: annotated } : {}) };
}

function descriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw new Error(`the manifest's ${where} is not an object`);
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== "string" || mediaType.length === 0) throw new Error(`the manifest's ${where} has no mediaType`);
  if (typeof digest !== "string" || !DIGEST.test(digest)) throw new Error(`the manifest's ${where} digest is not sha256:<64 hex>`);
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) throw new Error(`the manifest's ${where} size is not a non-negative integer`);
  return { mediaType, digest, size };
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
