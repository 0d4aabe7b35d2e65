import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import { userError } from "../shared/errors.ts";
import { withFileLock } from "../shared/file-lock.ts";
import { imageStoreDir } from "../shared/paths.ts";
import type { ImageRecord } from "./image.ts";
import { digestHex, imageName, isDigest, parseImageReference } from "./image-reference.ts";
import { ensurePrivateDir } from "../shared/private-files.ts";

/**
 * The local image store, one directory per image under <PITH_HOME>/images/<digest>/:
 *
 *   image.json            the record (its digest names the directory)
 *   vmlinux.gz            the kernel and root filesystem as stored and shipped: gzip, which
 *   rootfs.cpio.gz        shrinks a kernel's alignment padding to nothing (a kernel is ~6x smaller)
 *   runtime.ext2.gz       the read-only runtime disk, for images that have one
 *   boot/                 the same, unpacked for QEMU: a cache, rebuilt when missing
 *
 * and names/<name> holding the digest most recently built under that name.
 */
export interface StoredImage {
  record: ImageRecord;
  dir: string;
  /** Bytes stored: the compressed kernel and root filesystem plus the record. */
  storedBytes: number;
}

const hexOf = (digest: string): string => digest.replace(/^sha256:/, "");
const imageDir = (digest: string): string => join(imageStoreDir(), digestHex(digest));

export async function saveImage(record: ImageRecord, kernelPath: string, rootfsPath: string, diskPath?: string): Promise<StoredImage> {
  const dir = imageDir(record.digest);
  if (!existsSync(join(dir, "image.json"))) {
    const staging = join(imageStoreDir(), `.staging-${hexOf(record.digest).slice(0, 12)}-${process.pid}`);
    await rm(staging, { recursive: true, force: true });
    await ensurePrivateDir(staging);
    // gzip from node's zlib writes no timestamp or name: the stored bytes are reproducible too.
    await gzipFile(kernelPath, join(staging, "vmlinux.gz"));
    await gzipFile(rootfsPath, join(staging, "rootfs.cpio.gz"));
    if (diskPath) await gzipFile(diskPath, join(staging, "runtime.ext2.gz"));
    await writeFile(join(staging, "image.json"), JSON.stringify(record, null, 2) + "\n");
    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
  }
  await nameImage(record);
  return (await readStoredImage(record.digest))!;
}

/** Makes `record` the image its name resolves to (names/<name>), as a build or a pull does. */
export async function nameImage(record: ImageRecord): Promise<void> {
  await ensurePrivateDir(join(imageStoreDir(), "names"));
  await writeFile(join(imageStoreDir(), "names", imageName(record.name)), record.digest + "\n");
}

/** The image with this full digest, if this host stores it. */
export async function readStoredImage(digest: string): Promise<StoredImage | undefined> {
  const dir = imageDir(digest);
  const text = await readFile(join(dir, "image.json"), "utf8").catch(() => undefined);
  if (!text) return undefined;
  const sizes = await Promise.all(["image.json", "vmlinux.gz", "rootfs.cpio.gz", "runtime.ext2.gz"].map((f) => stat(join(dir, f)).then((s) => s.size, () => 0)));
  return { record: JSON.parse(text) as ImageRecord, dir, storedBytes: sizes.reduce((a, b) => a + b, 0) };
}

export async function listImages(): Promise<StoredImage[]> {
  const entries = await readdir(imageStoreDir()).catch(() => [] as string[]);
  const images = await Promise.all(entries.filter((e) => /^[0-9a-f]{64}$/.test(e)).map((e) => readStoredImage(e)));
  return images.filter((i): i is StoredImage => i !== undefined).sort((a, b) => a.record.name.localeCompare(b.record.name));
}

/** Finds an image by name (its latest build), full digest, or a unique digest prefix. */
export async function resolveImage(ref: string): Promise<StoredImage> {
  const { name, hex, full } = parseImageReference(ref);
  const named = name && (await readFile(join(imageStoreDir(), "names", name), "utf8").catch(() => undefined));
  if (named && isDigest(named.trim())) {
    const image = await readStoredImage(named.trim());
    if (image) return image;
  }
  // A full digest names its directory: no need to read every record.
  if (hex && full) {
    const image = await readStoredImage(hex);
    if (image) return image;
  }
  if (hex) {
    const matches = (await listImages()).filter((i) => hexOf(i.record.digest).startsWith(hex));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) throw userError("IMAGE_AMBIGUOUS", `${ref} matches ${matches.length} images`, "give more characters of the digest");
  }
  throw userError("IMAGE_NOT_FOUND", `no image named or with digest ${ref}`, "see `pith images` for what is stored, or `pith build DIR` to build one");
}

/** The unpacked kernel, initramfs and disk QEMU boots, recreated from the stored blobs if missing. */
export async function bootFiles(image: StoredImage): Promise<{ kernel: string; initrd: string; disk?: string }> {
  const boot = join(image.dir, "boot");
  const files = { kernel: join(boot, "vmlinux"), initrd: join(boot, "rootfs.cpio"), ...(image.record.disk ? { disk: join(boot, "runtime.ext2") } : {}) };
  const blobs: [string, string][] = [
    [files.kernel, "vmlinux.gz"],
    [files.initrd, "rootfs.cpio.gz"],
    ...(files.disk ? [[files.disk, "runtime.ext2.gz"] as [string, string]] : []),
  ];
  if (blobs.every(([path]) => existsSync(path))) return files;
  await ensurePrivateDir(boot);
  await withFileLock(join(image.dir, "boot.lock"), async () => {
    for (const [path, blob] of blobs) if (!existsSync(path)) await gunzipFile(join(image.dir, blob), path);
  });
  return files;
}

export async function removeImage(image: StoredImage): Promise<void> {
  await rm(image.dir, { recursive: true, force: true });
  const named = join(imageStoreDir(), "names", imageName(image.record.name));
  if ((await readFile(named, "utf8").catch(() => "")).trim() === image.record.digest) await rm(named, { force: true });
}

async function gzipFile(from: string, to: string): Promise<void> {
  await pipeline(createReadStream(from), createGzip({ level: 6 }), createWriteStream(to));
}

async function gunzipFile(from: string, to: string): Promise<void> {
  const staging = `${to}.${process.pid}.tmp`;
  await pipeline(createReadStream(from), createGunzip(), createWriteStream(staging));
  await rename(staging, to);
}
