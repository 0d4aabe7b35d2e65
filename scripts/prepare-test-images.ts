// Builds each example's image once per test run and records the digests for the tests to share
// (test/support/images.ts). Kernels come from the cache; a clean machine compiles each once.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { buildImage } from "../src/image/image-builder.ts";
import { shortDigest } from "../src/image/image.ts";
import { loadAppManifest } from "../src/manifest/app-manifest.ts";
import { pithRoot } from "../src/shared/paths.ts";
import { streamProgress } from "../src/shared/progress.ts";
import { buildProxyMachineImage, pickApiPort, PROXY_MACHINE_DIR } from "../test/support/images.ts";

const examples = ["examples/static-c", "examples/hello-ts", "examples/batch", "test/fixtures/slow-ready", "test/fixtures/snapshot-probe", "test/fixtures/deaf-to-restore", "test/fixtures/files-and-addon"];
execFileSync("make", ["-s", "-C", join(pithRoot(), "examples/static-c")], { stdio: "inherit" });
const digests: Record<string, string> = {};
for (const example of examples) {
  const dir = join(pithRoot(), example);
  const image = await buildImage(await loadAppManifest(dir), streamProgress(`building ${example}`));
  digests[dir] = image.record.digest;
  console.log(`${example}: ${shortDigest(image.record.digest)}`);
}
// The proxy machine's image names its API's address; the e2e test starts its control plane there.
const apiPort = await pickApiPort();
const proxyMachine = await buildProxyMachineImage(apiPort, streamProgress(`building ${PROXY_MACHINE_DIR} (API at 127.0.0.1:${apiPort})`));
digests[proxyMachine.key] = proxyMachine.image.record.digest;
console.log(`${PROXY_MACHINE_DIR}: ${shortDigest(proxyMachine.image.record.digest)} (egress 127.0.0.1:${apiPort})`);
// run-tests.mjs names a file of its run's own; run by hand, the digests are printed above only.
const out = process.env.PITH_TEST_IMAGES;
if (out) {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(digests, null, 2) + "\n");
}
