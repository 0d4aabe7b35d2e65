import type { ImageSpec } from "../model/kinds.ts";
import { API_VERSION, type ResourceInput } from "../model/resource.ts";
import { shortDigest } from "./image.ts";
import type { StoredImage } from "./image-store.ts";

import { IMAGE_NAME_LABEL } from "../model/labels.ts";

/**
 * The control plane's Image object for a locally stored image: named `<app>-<short digest>`, so
 * every build of an app is its own object, and labelled with the app's name.
 */
export function imageObject(image: StoredImage): ResourceInput<"Image", ImageSpec, Record<string, never>> {
  const { record } = image;
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
      storedBytes: image.storedBytes,
    },
  };
}
