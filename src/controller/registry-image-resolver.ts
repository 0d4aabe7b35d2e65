import type { Image, ImageSpec, ServiceStatus } from "../model/kinds.ts";
import { imageObjectOf } from "../image/image-object.ts";
import type { ResourceInput } from "../model/resource.ts";
import { resolveRegistryImage, type ResolvedImage } from "../registry/pull.ts";
import { parseRegistryReference, pinnedReference } from "../registry/registry-reference.ts";
import type { Store } from "../store/store.ts";

/** How long the control plane waits on a registry that stops answering: a reconcile is held meanwhile. */
const RESOLVE_IDLE_MS = 10_000;

/**
 * A service naming `registry/repo:tag` or `registry/repo@sha256:...`. The tag is resolved to a
 * manifest digest once per `spec.image` text (kept in the service's status), so every machine of
 * the service, now and after any restart, runs the same bytes; a new push to the tag is taken
 * when `spec.image` changes. The control plane reads only the manifest and the image record
 * (small, bounded, digest-checked) and records the image as an Image object whose `source`
 * says where nodes pull it. It never downloads the layers: nodes do, each for itself.
 */
export async function resolveRegistryServiceImage(
  store: Store,
  reference: string,
  status: ServiceStatus,
  cached: readonly Image[],
): Promise<{ image: Image; source: NonNullable<ServiceStatus["imageSource"]> }> {
  const ref = parseRegistryReference(reference);
  const previous = status.imageSource?.reference === reference ? status.imageSource : undefined;
  const pinned = ref.digest !== undefined ? pinnedReference(ref, ref.digest) : previous?.pinned;
  // Resolved before: no registry request while the service's image stays what it was.
  const known = pinned !== undefined && previous?.pinned === pinned ? cached.find((i) => i.spec.digest === status.imageDigest) : undefined;
  if (known && pinned) return { image: known, source: { reference, pinned } };
  const resolved = await resolveRegistryImage(pinned !== undefined ? parseRegistryReference(pinned) : ref, { idleMs: RESOLVE_IDLE_MS });
  const input = registryImageObject(resolved);
  const existing = await store.get<Image>("Image", input.metadata.name);
  let image: Image;
  if (!existing) image = await store.create<Image>(input);
  else if (existing.spec.digest === input.spec.digest && existing.spec.source === undefined) {
    // Built here before it was pushed: the same bytes, and now the Image says where they are.
    image = await store.update<Image>({ ...existing, spec: { ...existing.spec, source: resolved.pinned } });
  } else image = existing;
  // Machines pull from where this service's reference points, whatever other Images record:
  // the registry the reference names is the only one contacted.
  return { image, source: { reference, pinned: resolved.pinned } };
}

/** The Image object for an image in a registry, named like a local build's: `<app>-<short digest>`. */
export function registryImageObject(resolved: ResolvedImage): ResourceInput<"Image", ImageSpec, Record<string, never>> {
  const { record, manifest } = resolved;
  return imageObjectOf(record, manifest.config.size + manifest.layers.reduce((sum, l) => sum + l.size, 0), resolved.pinned);
}
