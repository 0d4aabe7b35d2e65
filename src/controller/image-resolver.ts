import type { Image } from "../model/kinds.ts";
import { imageObject } from "../image/image-object.ts";
import { IMAGE_NAME_LABEL } from "../model/labels.ts";
import { resolveImage } from "../image/image-store.ts";
import type { Store } from "../store/store.ts";


/**
 * A service names its image by name (the latest build), digest, or digest prefix. Images the
 * control plane knows are Image objects; on a single host, an image only in the local store is
 * registered on first use, so `pith build` then `image: hello-ts` just works.
 */
export async function resolveServiceImage(store: Store, ref: string, cached?: readonly Image[]): Promise<Image | undefined> {
  // `cached`: the Image objects as a cache has them, so a reconcile need not list them.
  const items = cached ? [...cached] : (await store.list<Image>("Image")).items;
  const hex = ref.replace(/^sha256:/, "");
  const byName = items.filter((i) => i.metadata.name === ref || i.metadata.labels[IMAGE_NAME_LABEL] === ref);
  const known =
    byName.sort((a, b) => b.metadata.createdAt.localeCompare(a.metadata.createdAt))[0] ??
    items.find((i) => i.spec.digest === ref || (hex.length >= 6 && i.spec.digest.replace(/^sha256:/, "").startsWith(hex)));
  // A digest is final; a name may have been rebuilt since it was registered, and the local
  // store knows its latest digest.
  if (known && (known.spec.digest === ref || !byName.includes(known))) return known;
  const local = await resolveImage(ref).catch(() => undefined);
  if (known && (!local || local.record.digest === known.spec.digest)) return known;
  if (!local) return known;
  const input = imageObject(local);
  return (await store.get<Image>("Image", input.metadata.name)) ?? store.create<Image>(input);
}
