import { existsSync } from "node:fs";
import { buildImage } from "../image/image-builder.ts";
import { resolveImage, type StoredImage } from "../image/image-store.ts";
import { shortDigest } from "../image/image.ts";
import { loadAppManifest } from "../manifest/app-manifest.ts";
import { userError } from "../shared/errors.ts";
import { streamProgress } from "../shared/progress.ts";

/** `pith run DIR|IMAGE` and friends: a path is an app to build (cached), anything else an image. */
export async function imageFromArgument(arg: string): Promise<StoredImage> {
  if (!existsSync(arg)) {
    if (/[/\\]|^\.\.?$/.test(arg)) throw userError("APP_DIR_NOT_FOUND", `${arg} does not exist`, "give an app directory (holding pith.yaml) or an image name or digest");
    return resolveImage(arg);
  }
  const manifest = await loadAppManifest(arg);
  const image = await buildImage(manifest, streamProgress(`building ${manifest.name}`));
  process.stderr.write(`image ${image.record.name} ${shortDigest(image.record.digest)}\n`);
  return image;
}
