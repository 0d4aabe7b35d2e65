import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import type { Descriptor, PithManifest } from "./artifact.ts";
import type { DistributionClient } from "./distribution-client.ts";

/**
 * Fetching one layer of a pull, checked as it streams: the bounds, the digests, the unpacked
 * bytes against the record, and the whole pull's deadline. pull.ts decides what to fetch and
 * where; this file decides whether what arrived may be kept.
 */

/**
 * Image files are modes as a build leaves them: the jailed VMM, under a uid of its own, opens
 * the boot files through a bind mount, so they must be readable by others. The store's dirs
 * stay 0700: nobody else can reach them by path.
 */
export const STORED_FILE_MODE = 0o644;

/** The whole pull's bound: when it passes, the stream being read is destroyed with a clear error. */
export class Deadline {
  private current: Readable | undefined;
  private expired = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly ms: number, private readonly client: DistributionClient) {
    this.timer = setTimeout(() => {
      this.expired = true;
      this.current?.destroy(this.error());
    }, ms);
    this.timer.unref();
  }

  watch(stream: Readable): void {
    if (this.expired) stream.destroy(this.error());
    this.current = stream;
  }

  error(): Error {
    return this.client.refused(`the pull took longer than ${this.ms / 1000} s`);
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}

/** A transform that counts and hashes what passes, and fails past `max` bytes. */
function meter(max: number, tooLong: () => Error, onBytes?: (n: number) => void): { stream: Transform; count: () => number; hex: () => string } {
  const hash = createHash("sha256");
  let count = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      count += chunk.length;
      if (count > max) return done(tooLong());
      hash.update(chunk);
      onBytes?.(chunk.length);
      done(null, chunk);
    },
  });
  let hex: string | undefined;
  return { stream, count: () => count, hex: () => (hex ??= hash.digest("hex")) };
}

/**
 * One layer, in one pass: the blob is streamed to its file (never more bytes than the manifest
 * declares) and, on the way, into gunzip for the boot file (never more than the record
 * declares). The blob's size and digest are checked first, so a tampered blob is reported as
 * such even when its damage also broke the gzip stream; then the unpacked bytes against the
 * record's size and sha256.
 */
export async function fetchLayer(
  client: DistributionClient,
  layer: PithManifest["layers"][number],
  paths: { blob: string; boot: string },
  expected: { sha256: string; bytes: number },
  deadline: Deadline,
  onBytes: (n: number) => void,
): Promise<void> {
  const res = await client.getBlob(layer.digest);
  deadline.watch(res.body);
  const declared = Number(res.headers["content-length"] ?? NaN);
  if (!Number.isNaN(declared) && declared !== layer.size) {
    res.body.destroy();
    throw client.refused(`the ${layer.role} blob is ${declared} bytes, the manifest declares ${layer.size}`);
  }
  const blob = meter(layer.size, () => client.refused(`the ${layer.role} blob is longer than the ${layer.size} bytes the manifest declares`), onBytes);
  const raw = meter(expected.bytes, () => client.refused(`the ${layer.role} unpacks to more than the ${expected.bytes} bytes its record declares`));
  const gunzip = createGunzip();
  // Its failures are the unpacking's promise's to report; this keeps a late one from being unhandled.
  gunzip.on("error", () => {});
  const unpacking = pipeline(gunzip, raw.stream, createWriteStream(paths.boot, { flags: "wx", mode: STORED_FILE_MODE })).then(
    () => undefined,
    (e: unknown) => e,
  );
  const unpackingStopped = () => gunzip.destroyed || gunzip.writableEnded;
  // Passes the blob on to its file and feeds gunzip, waiting when gunzip is behind; once the
  // unpacking has failed, the blob is still read to the end, for its digest.
  const tee = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (unpackingStopped() || gunzip.write(chunk)) return done(null, chunk);
      let resumed = false;
      const resume = () => {
        if (!resumed) done(null, chunk);
        resumed = true;
      };
      gunzip.once("drain", resume);
      void unpacking.then(resume);
    },
    flush(done) {
      if (!unpackingStopped()) gunzip.end();
      done();
    },
  });
  try {
    await pipeline(res.body, blob.stream, tee, createWriteStream(paths.blob, { flags: "wx", mode: STORED_FILE_MODE }));
  } catch (e) {
    gunzip.destroy();
    await unpacking;
    throw e;
  }
  checkBlobBytes(client, layer, blob.count(), blob.hex(), `the ${layer.role} blob`);
  const unpackError = await unpacking;
  if (unpackError !== undefined) {
    const code = (unpackError as { code?: string }).code;
    if (code === "Z_DATA_ERROR" || code === "Z_BUF_ERROR") throw client.refused(`the ${layer.role} layer is not valid gzip`);
    throw unpackError;
  }
  if (raw.count() !== expected.bytes) throw client.refused(`the ${layer.role} unpacks to ${raw.count()} bytes, its record declares ${expected.bytes}`);
  if (raw.hex() !== expected.sha256) throw client.refused(`the ${layer.role} unpacks to bytes hashing to ${raw.hex()}, not the record's ${expected.sha256}`);
}

export function checkBlobBytes(client: DistributionClient, blob: Descriptor, size: number, hex: string, what: string): void {
  if (size !== blob.size) throw client.refused(`${what} is ${size} bytes, the manifest declares ${blob.size}`);
  if (`sha256:${hex}` !== blob.digest) throw client.refused(`${what} hashes to sha256:${hex}, not ${blob.digest} as the manifest says`);
}
