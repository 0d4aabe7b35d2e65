import type { ImageSpec } from "../model/kinds.ts";
import { IMAGE_NAME_LABEL } from "../model/labels.ts";
import { API_VERSION, type ResourceInput } from "../model/resource.ts";
import { shortDigest, type ImageRecord } from "./image.ts";
import type { StoredImage } from "./image-store.ts";

/** The control plane's Image object for a locally stored image. */
export function imageObject(image: StoredImage): ResourceInput<"Image", ImageSpec, Record<string, never>> {
  return imageObjectOf(image.record, image.storedBytes);
}

/**
 * The Image object for an image record, wherever it is kept: named `<app>-<short digest>`, so
 * every build of an app is its own object, and labelled with the app's name; `source` says
 * which registry it came from, if any.
 */
export function imageObjectOf(record: ImageRecord, storedBytes: number, source?: ImageSpec["source"]): ResourceInput<"Image", ImageSpec, Record<string, never>> {
  return {
    apiVersion: API_VERSION,
    kind: "Image",
    metadata: { name: `${record.name}-${shortDigest(record.digest)}`, labels: { [IMAGE_NAME_LABEL]: record.name } },
    spec: {
      digest: record.digest,
      runtime: record.runtime,
      memoryMiB: record.capabilities.memoryMiB,
      vcpus: record.capabilities.vcpus,
      listen: record.capabilities.listen.map((l) => l.port),
      egress: record.capabilities.egress.map((e) => `${e.host}:${e.port}`),
      storedBytes,
      ...(source === undefined ? {} : { source }),
      ...(record.capabilities.volumes?.length ? { volumes: record.capabilities.volumes } : {}),
    },
  };
}
