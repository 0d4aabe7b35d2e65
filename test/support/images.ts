import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles, resolveImage, type StoredImage } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";

/**
 * Test images are built once per test run: scripts/run-tests.mjs builds every example before the
 * tests start and records the digests in .test-artifacts/images.json; a test run by hand builds
 * (and caches) what it needs.
 */
export const testArtifactsDir = (): string => process.env.PITH_TEST_ARTIFACTS ?? join(pithRoot(), ".test-artifacts");

export async function appImage(appDir: string): Promise<StoredImage> {
  const prepared = join(testArtifactsDir(), "images.json");
  const dir = appDir.startsWith("/") ? appDir : join(pithRoot(), appDir);
  if (existsSync(prepared)) {
    const digests = JSON.parse(readFileSync(prepared, "utf8")) as Record<string, string>;
    const digest = digests[dir];
    if (digest) return resolveImage(digest);
  }
  return buildImage(await loadAppManifest(dir));
}

export async function bootable(image: StoredImage) {
  return { image: image.record, ...(await bootFiles(image)) };
}
