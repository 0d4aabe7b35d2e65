import { randomBytes, createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, rename, rm, statfs, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ImageRecord } from "../image/image.ts";
import { digestHex } from "../image/image-reference.ts";
import { nameImage, readStoredImage, type StoredImage } from "../image/image-store.ts";
import { systemError } from "../shared/errors.ts";
import { isAlive, withFileLock } from "../shared/file-lock.ts";
import { imageStoreDir } from "../shared/paths.ts";
import { ensurePrivateDir } from "../shared/private-files.ts";
import { parsePithManifest, PITH_LAYERS, type PithManifest } from "./artifact.ts";
import { DistributionClient, type DistributionClientOptions } from "./distribution-client.ts";
import { readBounded } from "./http-transport.ts";
import { checkBlobBytes, Deadline, fetchLayer, STORED_FILE_MODE } from "./layer-fetch.ts";
import { checkPulledRecord } from "./record-check.ts";
import { manifestSelector, pinnedReference, type RegistryReference } from "./registry-reference.ts";

/**
 * Pulling an image: the manifest (bounded, digest-checked), the record (bounded by its declared
 * size, digest-checked, hashing to its own Pith digest), then each layer streamed to a staging
 * directory inside the image store, never more bytes than the manifest declared, its digest
 * checked, and unpacked for booting with the unpacked bytes checked against the record's hashes
 * and sizes. Only then is the staging directory renamed to images/<digest>; a failure at any
 * step removes it, so nothing a registry sent is kept unless all of it checked out.
 *
 * Every path is made from the digest's hex digits and Pith's fixed file names: nothing a
 * registry sends names a file.
 */
export interface ResolvedImage {
  /** `registry/repo@sha256:...`, the manifest pinned. */
  pinned: string;
  manifestDigest: string;
  manifest: PithManifest;
  record: ImageRecord;
  configBytes: Buffer;
}

export interface PullOptions extends Omit<DistributionClientOptions, "access"> {
  /** The Pith digest the caller expects (a Machine's spec.image): anything else is refused. */
  expectImageDigest?: string;
  /** Make the image's name resolve to it locally, as `pith pull` does (an agent does not). */
  setName?: boolean;
  /** Bytes received so far of those to receive. */
  onProgress?: (received: number, total: number) => void;
  /** The whole pull's bound (default 15 min): a registry trickling bytes cannot hold it forever. */
  timeoutMs?: number;
}

export interface PullResult {
  image: StoredImage;
  pinned: string;
  manifestDigest: string;
  /** False when the image was already stored and nothing was downloaded. */
  downloaded: boolean;
  bytes: number;
  ms: number;
}

const DEFAULT_TIMEOUT_MS = 15 * 60_000;
/** Room left on the disk after a pull, so a pull never fills it. */
const DISK_MARGIN_BYTES = 256 * 1024 * 1024;

/** The manifest and record a reference names, checked, without downloading the layers. */
export async function resolveRegistryImage(ref: RegistryReference, options: Omit<DistributionClientOptions, "access"> = {}): Promise<ResolvedImage> {
  return resolveWith(new DistributionClient(ref, { ...options, access: "pull" }));
}

async function resolveWith(client: DistributionClient): Promise<ResolvedImage> {
  const { bytes, digest } = await client.getManifest(manifestSelector(client.ref));
  let manifest: PithManifest;
  try {
    manifest = parsePithManifest(bytes);
  } catch (e) {
    throw client.refused((e as Error).message);
  }
  const res = await client.getBlob(manifest.config.digest);
  const configBytes = await readBounded(res, manifest.config.size, "the image record").catch((e: Error) => Promise.reject(client.refused(e.message)));
  checkBlobBytes(client, manifest.config, configBytes.length, createHash("sha256").update(configBytes).digest("hex"), "the image record");
  let record: ImageRecord;
  try {
    record = checkPulledRecord(configBytes);
  } catch (e) {
    throw client.refused((e as Error).message);
  }
  if (manifest.imageDigest !== undefined && manifest.imageDigest !== record.digest) throw client.refused(`the manifest says image ${manifest.imageDigest}, its record is ${record.digest}`);
  if ((record.disk !== undefined) !== manifest.layers.some((l) => l.role === "disk")) throw client.refused("the record and the manifest disagree about the runtime disk");
  return { pinned: pinnedReference(client.ref, digest), manifestDigest: digest, manifest, record, configBytes };
}

/** Concurrent pulls of one image in this process share one download. */
const inFlight = new Map<string, Promise<PullResult>>();

export async function pullImage(ref: RegistryReference, options: PullOptions = {}): Promise<PullResult> {
  const started = Date.now();
  const client = new DistributionClient(ref, { ...options, access: "pull" });
  const resolved = await resolveWith(client);
  const { record } = resolved;
  if (options.expectImageDigest !== undefined && record.digest !== options.expectImageDigest) {
    throw client.refused(`${resolved.pinned} is image ${record.digest}, not ${options.expectImageDigest}`);
  }
  const present = await readStoredImage(record.digest);
  if (present) {
    if (options.setName) await nameImage(record);
    return { image: present, pinned: resolved.pinned, manifestDigest: resolved.manifestDigest, downloaded: false, bytes: 0, ms: Date.now() - started };
  }
  const key = record.digest;
  let pulling = inFlight.get(key);
  if (!pulling) {
    pulling = download(client, resolved, options, started).finally(() => inFlight.delete(key));
    inFlight.set(key, pulling);
  }
  const result = await pulling;
  if (options.setName) await nameImage(record);
  return result;
}

async function download(client: DistributionClient, resolved: ResolvedImage, options: PullOptions, started: number): Promise<PullResult> {
  const { record, manifest } = resolved;
  const hex = digestHex(record.digest);
  const store = imageStoreDir();
  await ensurePrivateDir(store);
  return withFileLock(join(store, `.pull-${hex}.lock`), async () => {
    const already = await readStoredImage(record.digest);
    if (already) return { image: already, pinned: resolved.pinned, manifestDigest: resolved.manifestDigest, downloaded: false, bytes: 0, ms: Date.now() - started };
    const total = manifest.layers.reduce((sum, l) => sum + l.size, 0);
    const unpacked = record.kernel.bytes + record.rootfs.bytes + (record.disk?.bytes ?? 0);
    const space = await statfs(store);
    if (space.bavail * space.bsize < total + unpacked + DISK_MARGIN_BYTES) {
      throw systemError("DISK_FULL", `pulling ${resolved.pinned} needs ${total + unpacked} bytes and ${store} has ${space.bavail * space.bsize} free`, "free space in PITH_HOME, or remove images");
    }
    await removeAbandonedPulls(store);
    const staging = join(store, `${STAGING_PREFIX}${hex.slice(0, 12)}-${process.pid}-${randomBytes(4).toString("hex")}`);
    const deadline = new Deadline(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, client);
    try {
      await ensurePrivateDir(join(staging, "boot"));
      let received = 0;
      for (const layer of manifest.layers) {
        const kind = PITH_LAYERS.find((k) => k.role === layer.role)!;
        const expected = layer.role === "kernel" ? record.kernel : layer.role === "rootfs" ? record.rootfs : record.disk!;
        const paths = { blob: join(staging, kind.file), boot: join(staging, "boot", kind.file.replace(/\.gz$/, "")) };
        await fetchLayer(client, layer, paths, expected, deadline, (n) => {
          received += n;
          options.onProgress?.(received, total);
        });
      }
      await writeFile(join(staging, "image.json"), resolved.configBytes, { mode: STORED_FILE_MODE });
      const dir = join(store, hex);
      if (!existsSync(join(dir, "image.json"))) {
        await rm(dir, { recursive: true, force: true });
        await rename(staging, dir);
      }
      const image = await readStoredImage(record.digest);
      if (!image) throw systemError("PULL_FAILED", `the pulled image ${record.digest} is not in the store after the pull`);
      return { image, pinned: resolved.pinned, manifestDigest: resolved.manifestDigest, downloaded: true, bytes: received, ms: Date.now() - started };
    } finally {
      deadline.clear();
      await rm(staging, { recursive: true, force: true });
    }
  });
}

const STAGING_PREFIX = ".pull-";
const STAGING = /^\.pull-[0-9a-f]{12}-([0-9]+)-[0-9a-f]{8}$/;

/** Staging dirs of pulls whose process died (a kill -9 mid-pull) would hold their bytes forever. */
async function removeAbandonedPulls(store: string): Promise<void> {
  for (const entry of await readdir(store)) {
    const owner = STAGING.exec(entry)?.[1];
    if (owner !== undefined && !isAlive(Number(owner))) await rm(join(store, entry), { recursive: true, force: true });
  }
}
