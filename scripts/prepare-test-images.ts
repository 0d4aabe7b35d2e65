// Builds each example's image once per test run and records the digests for the tests to share
// (test/support/images.ts). Kernels come from the cache; a clean machine compiles each once.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildImage } from "../src/image/image-builder.ts";
import { shortDigest } from "../src/image/image.ts";
import { loadAppManifest } from "../src/manifest/app-manifest.ts";
import { pithRoot } from "../src/shared/paths.ts";
import { streamProgress } from "../src/shared/progress.ts";
import { testArtifactsDir } from "../test/support/images.ts";

const examples = ["examples/static-c", "examples/hello-ts", "examples/batch", "test/fixtures/slow-ready"];
execFileSync("make", ["-s", "-C", join(pithRoot(), "examples/static-c")], { stdio: "inherit" });
const digests: Record<string, string> = {};
for (const example of examples) {
  const dir = join(pithRoot(), example);
  const image = await buildImage(await loadAppManifest(dir), streamProgress(`building ${example}`));
  digests[dir] = image.record.digest;
  console.log(`${example}: ${shortDigest(image.record.digest)}`);
}
mkdirSync(testArtifactsDir(), { recursive: true });
writeFileSync(join(testArtifactsDir(), "images.json"), JSON.stringify(digests, null, 2) + "\n");
