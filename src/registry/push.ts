import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { userError } from "../shared/errors.ts";
import { sha256File } from "../shared/hash.ts";
import type { StoredImage } from "../image/image-store.ts";
import { manifestBytes, PITH_CONFIG_MEDIA_TYPE, PITH_LAYERS, sha256Digest, type LayerRole } from "./artifact.ts";
import { DistributionClient, type DistributionClientOptions } from "./distribution-client.ts";
import { DEFAULT_TAG, pinnedReference, type RegistryReference } from "./registry-reference.ts";

export interface PushResult {
  /** `registry/repo@sha256:...`: the manifest's digest, what a Service should name. */
  pinned: string;
  manifestDigest: string;
  tag?: string;
  /** Blobs uploaded, and those the registry already had. */
  uploaded: number;
  skipped: number;
  bytes: number;
}

/**
 * Pushes a stored image as a Pith artifact: each blob the registry lacks (record, kernel,
 * rootfs, disk), then the manifest under the tag (default `latest`), or under its own digest
 * when the reference pins one.
 */
export async function pushImage(image: StoredImage, ref: RegistryReference, options: Omit<DistributionClientOptions, "access"> = {}, log: (line: string) => void = () => {}): Promise<PushResult> {
  const client = new DistributionClient(ref, { ...options, access: "push" });
  const configBytes = await readFile(join(image.dir, "image.json"));
  const blobs: { role: LayerRole | "config"; path: string; digest: string; size: number }[] = [
    { role: "config", path: join(image.dir, "image.json"), digest: sha256Digest(configBytes), size: configBytes.length },
  ];
  for (const layer of PITH_LAYERS) {
    if (layer.role === "disk" && !image.record.disk) continue;
    const path = join(image.dir, layer.file);
    blobs.push({ role: layer.role, path, digest: `sha256:${await sha256File(path)}`, size: (await stat(path)).size });
  }
  const [config, ...layers] = blobs;
  const manifest = manifestBytes({ mediaType: PITH_CONFIG_MEDIA_TYPE, digest: config!.digest, size: config!.size }, layers.map((l) => ({ role: l.role as LayerRole, digest: l.digest, size: l.size })), image.record.digest);
  const manifestDigest = sha256Digest(manifest);
  if (ref.digest !== undefined && ref.digest !== manifestDigest) {
    throw userError("PUSH_DIGEST_MISMATCH", `the image's manifest is ${manifestDigest}, not ${ref.digest} as the reference says`, "push to a tag (REGISTRY/REPO:TAG), or without one");
  }
  let uploaded = 0;
  let bytes = 0;
  for (const blob of blobs) {
    if (await client.blobExists(blob.digest)) {
      log(`${blob.role}: ${blob.digest.slice(0, 19)} already in the registry`);
      continue;
    }
    log(`${blob.role}: uploading ${blob.size} bytes`);
    await client.uploadBlob(blob.digest, blob.size, () => createReadStream(blob.path));
    uploaded++;
    bytes += blob.size;
  }
  // Blobs first, then the manifest that names them: a registry refuses a manifest with missing blobs.
  const tag = ref.digest === undefined ? ref.tag ?? DEFAULT_TAG : undefined;
  await client.putManifest(tag ?? manifestDigest, manifest);
  return { pinned: pinnedReference(ref, manifestDigest), manifestDigest, ...(tag ? { tag } : {}), uploaded, skipped: blobs.length - uploaded, bytes };
}
