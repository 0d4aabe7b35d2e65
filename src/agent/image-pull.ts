import { readStoredImage } from "../image/image-store.ts";
import { pullImage, type PullResult } from "../registry/pull.ts";
import { parseRegistryReferenceOrUndefined } from "../registry/registry-reference.ts";
import { userError } from "../shared/errors.ts";

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
