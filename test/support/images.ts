import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles, resolveImage, type StoredImage } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import type { Progress } from "../../src/shared/progress.ts";

/**
 * Test images are built once per test run: scripts/run-tests.mjs builds every example before the
 * tests start, records the digests in a file of that run's own and names it to the tests in
 * PITH_TEST_IMAGES. A test run by hand builds (and caches) what it needs: a file a run left
 * behind (interrupted) holds images of older sources and is never read.
 */
export const testArtifactsDir = (): string => process.env.PITH_TEST_ARTIFACTS ?? join(pithRoot(), ".test-artifacts");

/** The digests this test run prepared, by app dir (or proxy-machine key); none outside a run of run-tests.mjs. */
export function preparedImages(): Record<string, string> {
  const file = process.env.PITH_TEST_IMAGES;
  if (!file || !existsSync(file)) return {};
  return JSON.parse(readFileSync(file, "utf8")) as Record<string, string>;
}

export async function appImage(appDir: string): Promise<StoredImage> {
  const dir = appDir.startsWith("/") ? appDir : join(pithRoot(), appDir);
  const digest = preparedImages()[dir];
  if (digest) return resolveImage(digest);
  return buildImage(await loadAppManifest(dir));
}

export async function bootable(image: StoredImage) {
  return { image: image.record, ...(await bootFiles(image)) };
}

/**
 * The proxy machine (examples/proxy-machine) may reach only the control plane's API, so its image
 * names the API's host:port. The test's API gets a port chosen when the image is built: prepared
 * once per run under a key naming that port, or chosen and built here by a test run by hand.
 */
export const PROXY_MACHINE_DIR = "examples/proxy-machine";
const proxyMachineKey = (apiPort: number): string => `${join(pithRoot(), PROXY_MACHINE_DIR)}#api=127.0.0.1:${apiPort}`;

export async function buildProxyMachineImage(apiPort: number, progress?: Progress): Promise<{ key: string; image: StoredImage }> {
  const manifest = await loadAppManifest(join(pithRoot(), PROXY_MACHINE_DIR));
  // Its own name: `pith run proxy-machine` should still find the image for the real API's address.
  const variant = { ...manifest, name: "proxy-machine-e2e", egress: [{ host: "127.0.0.1", port: apiPort }] };
  return { key: proxyMachineKey(apiPort), image: await buildImage(variant, progress) };
}

export async function proxyMachineImage(): Promise<{ image: StoredImage; apiPort: number }> {
  const prefix = proxyMachineKey(0).replace(/0$/, "");
  for (const [key, digest] of Object.entries(preparedImages())) {
    if (key.startsWith(prefix)) return { image: await resolveImage(digest), apiPort: Number(key.slice(prefix.length)) };
  }
  const apiPort = await pickApiPort();
  return { image: (await buildProxyMachineImage(apiPort)).image, apiPort };
}

/**
 * A loopback port for a test control plane that must be known before it starts. Chosen below
 * Linux's ephemeral range (32768+), where the kernel never hands out ports on its own, so nothing
 * but another listener can take it between now and the test.
 */
export async function pickApiPort(): Promise<number> {
  const start = 20_000 + Math.floor(Math.random() * 10_000);
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + ((start - 20_000 + i * 37) % 10_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error("no free loopback port between 20000 and 29999");
}
