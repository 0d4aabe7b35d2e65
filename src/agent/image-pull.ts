import { readStoredImage } from "../image/image-store.ts";
import type { Machine, MachinePull } from "../model/kinds.ts";
import { pullImage, type PullResult } from "../registry/pull.ts";
import { parseRegistryReferenceOrUndefined } from "../registry/registry-reference.ts";
import { messageOf, userError } from "../shared/errors.ts";

/**
 * How an agent gets a machine's image when its store lacks it: from `source`, the registry
 * reference the control plane pinned (`registry/repo@sha256:<manifest>`), refusing anything
 * that is not image `digest`. Nodes share no files, so each pulls for itself, once: the image
 * then stays in its store (and concurrent starts share one download).
 *
 * Returns undefined when the image was already stored.
 */
export type ImagePuller = (source: string, digest: string, onProgress: (received: number, total: number) => void) => Promise<PullResult | undefined>;

export const pullIfMissing: ImagePuller = async (source, digest, onProgress) => {
  if (await readStoredImage(digest)) return undefined;
  const ref = parseRegistryReferenceOrUndefined(source);
  // The API checks the field's shape; this is the agent not trusting that it did.
  if (!ref?.digest) throw userError("INVALID_IMAGE_SOURCE", `the machine's image source ${JSON.stringify(source.slice(0, 300))} is not REGISTRY/REPO@sha256:<64 hex>`);
  const result = await pullImage(ref, { expectImageDigest: digest, onProgress });
  return result.downloaded ? result : undefined;
};

/** Where a machine's pull is reported: its status, its events, the agent's log. */
export interface PullReports {
  status(pull: MachinePull): Promise<void>;
  event(type: "Normal" | "Warning", reason: "Pulling" | "Pulled" | "PullFailed", message: string): void;
  log(message: string): void;
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
const PROGRESS_EVERY_MS = 1000;

/**
 * A machine whose image this node lacks waits for its pull. Progress goes on its status at
 * most once a second (status writes are requests to the control plane), the pull's start, end
 * and time, or its failure, on its events. Returns what the machine's status keeps: the pull's
 * size and time, or nothing when no pull was needed.
 */
export async function pullForMachine(machine: Machine, puller: ImagePuller, reports: PullReports): Promise<MachinePull | undefined> {
  const source = machine.spec.imageSource;
  if (!source) return undefined;
  const image = machine.spec.image.slice(0, 19);
  let reportedAt = 0;
  let writes = Promise.resolve();
  const report = (pull: MachinePull) => {
    writes = writes.then(() => reports.status(pull)).catch((e: unknown) => reports.log(`cannot report pull progress: ${messageOf(e)}`));
  };
  let result: PullResult | undefined;
  try {
    result = await puller(source, machine.spec.image, (received, total) => {
      if (reportedAt === 0) reports.event("Normal", "Pulling", `pulling image ${image} from ${source} (${mib(total)} MiB)`);
      if (Date.now() - reportedAt < PROGRESS_EVERY_MS && received < total) return;
      reportedAt = Date.now();
      report({ source, bytes: received, totalBytes: total });
    });
  } catch (e) {
    reports.event("Warning", "PullFailed", `cannot pull ${source}: ${messageOf(e)}`);
    throw e;
  } finally {
    await writes;
  }
  if (!result) return undefined;
  const pull = { source, bytes: result.bytes, totalBytes: result.bytes, ms: result.ms };
  reports.event("Normal", "Pulled", `pulled image ${image} from ${source} in ${(result.ms / 1000).toFixed(1)} s (${mib(result.bytes)} MiB, every blob verified)`);
  report(pull);
  await writes;
  return pull;
}
