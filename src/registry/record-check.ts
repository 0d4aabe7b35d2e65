import { canonicalJson } from "../shared/canonical-json.ts";
import type { ImageRecord } from "../image/image.ts";
import { IMAGE_NAME_PATTERN } from "../image/image-reference.ts";
import { sha256 } from "../shared/hash.ts";

/**
 * An image record that came from a registry, checked before anything is stored or started from
 * it: the fields Pith reads have the shapes Pith wrote, the sizes are within what a machine can
 * boot, and the record hashes to its own digest (so the digest a Machine names covers the
 * kernel's, root filesystem's and disk's hashes, which the pull checks the unpacked bytes
 * against). Throws an Error saying what is wrong.
 */
const HEX64 = /^[0-9a-f]{64}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const NAME = new RegExp(IMAGE_NAME_PATTERN);
/** What the layers may unpack to: a gzip bomb stops here. */
const UNPACKED_LIMITS = { kernel: 512 * 1024 * 1024, rootfs: 4 * 1024 * 1024 * 1024, disk: 16 * 1024 * 1024 * 1024 };

export function checkPulledRecord(bytes: Buffer): ImageRecord {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new Error("the image record is not JSON");
  }
  const r = value as Partial<ImageRecord> & Record<string, unknown>;
  const fail = (what: string): never => {
    throw new Error(`the image record's ${what}`);
  };
  if (typeof r !== "object" || r === null || Array.isArray(r)) fail("top level is not an object");
  if (r.schemaVersion !== 1) fail("schemaVersion is not 1");
  if (typeof r.digest !== "string" || !DIGEST.test(r.digest)) fail("digest is not sha256:<64 hex>");
  if (typeof r.name !== "string" || !NAME.test(r.name)) fail("name is not an image name");
  if (r.runtime !== "node" && r.runtime !== "native") fail("runtime is neither node nor native");
  checkBlob(r.kernel, "kernel", UNPACKED_LIMITS.kernel, fail);
  checkBlob(r.rootfs, "rootfs", UNPACKED_LIMITS.rootfs, fail);
  if (!Array.isArray(r.rootfs?.files)) fail("rootfs.files is not a list");
  if (r.disk !== undefined) checkBlob(r.disk, "disk", UNPACKED_LIMITS.disk, fail);
  const caps = r.capabilities;
  if (typeof caps !== "object" || caps === null) fail("capabilities are missing");
  if (!Number.isInteger(caps!.memoryMiB) || !Number.isInteger(caps!.vcpus)) fail("capabilities' memoryMiB or vcpus is not an integer");
  if (!Array.isArray(caps!.listen) || !Array.isArray(caps!.egress)) fail("capabilities' listen or egress is not a list");
  if (!Array.isArray(r.argv) || !r.argv.every((a) => typeof a === "string")) fail("argv is not a list of strings");
  if (typeof r.env !== "object" || r.env === null || !Object.values(r.env).every((v) => typeof v === "string")) fail("env is not a map of strings");
  const { digest, ...rest } = r as ImageRecord;
  const computed = `sha256:${sha256(canonicalJson(rest))}`;
  if (computed !== digest) fail(`contents hash to ${computed}, not to its digest ${digest}`);
  return r as ImageRecord;
}

function checkBlob(blob: unknown, what: string, max: number, fail: (what: string) => never): void {
  const b = blob as { sha256?: unknown; bytes?: unknown } | undefined;
  if (typeof b !== "object" || b === null) fail(`${what} is missing`);
  if (typeof b!.sha256 !== "string" || !HEX64.test(b!.sha256)) fail(`${what}.sha256 is not 64 hex digits`);
  if (typeof b!.bytes !== "number" || !Number.isSafeInteger(b!.bytes) || b!.bytes < 0 || b!.bytes > max) fail(`${what}.bytes is not a size up to ${max}`);
}

