import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { overlayInitramfs } from "../../src/image/cpio/overlay-archive.ts";
import { GUEST_APP_SCRIPT, GUEST_CODE_CACHE, GUEST_START_SCRIPT } from "../../src/image/guest-paths.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles, type StoredImage } from "../../src/image/image-store.ts";
import { GUEST_NODE_PATH } from "../../src/image/node-runtime.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { appImage } from "../support/images.ts";
import { httpGet, missingForMachines, startMachine } from "../support/machines.ts";

const skip = missingForMachines() ?? (hasCpio() ? undefined : "needs cpio(1) to read the image's code cache (apt-get install cpio)");

function hasCpio(): boolean {
  try {
    execFileSync("cpio", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** One file of an uncompressed newc initramfs, read with cpio(1). */
function fileOfInitramfs(initrd: string, path: string): Buffer {
  return execFileSync("cpio", ["-i", "--quiet", "--to-stdout", path.replace(/^\//, "")], { input: readFileSync(initrd), maxBuffer: 64 << 20 });
}

/** examples/hello-ts with `node: { codeCache: true }`, built once for both tests. */
let cached: Promise<StoredImage> | undefined;
function helloWithCodeCache(): Promise<StoredImage> {
  cached ??= loadAppManifest(join(pithRoot(), "examples/hello-ts")).then((m) => buildImage({ ...m, node: { ...m.node, codeCache: true } }));
  return cached;
}

describe("a Node image's V8 code cache, in a machine", { skip, timeout: 600_000 }, () => {
  test("without node.codeCache, hello-ts is a CommonJS bundle node runs directly", async () => {
    const image = await appImage("examples/hello-ts");
    assert.deepEqual(image.record.argv, [GUEST_NODE_PATH, GUEST_APP_SCRIPT]);
    assert.ok(!image.record.rootfs.files.some((f) => f.path === GUEST_CODE_CACHE));
  });

  test("hello-ts starts from its code cache and serves; V8 takes the cache without a word", async (t) => {
    const image = await helloWithCodeCache();
    assert.deepEqual(image.record.argv, [GUEST_NODE_PATH, GUEST_START_SCRIPT], "Pith's start script runs the app");
    assert.ok(image.record.rootfs.files.some((f) => f.path === GUEST_CODE_CACHE), "the image carries the cache");
    const machine = await startMachine(t, image);
    await machine.whenReady();
    const { status, body } = await httpGet(machine.ports[0]!.url);
    assert.equal(status, 200);
    assert.match(body, /"greeting"/);
    assert.doesNotMatch(readFileSync(machine.consoleLog, "utf8"), /V8 refused/);
  });

  test("the same app builds the same image: the cache is made deterministically", async () => {
    const again = await loadAppManifest(join(pithRoot(), "examples/hello-ts")).then((m) => buildImage({ ...m, node: { ...m.node, codeCache: true } }));
    assert.equal(again.record.digest, (await helloWithCodeCache()).record.digest);
  });

  test("with its cache damaged, hello-ts still boots and serves, and says V8 refused the cache", async (t) => {
    const image = await helloWithCodeCache();
    const boot = await bootFiles(image);
    const cache = fileOfInitramfs(boot.initrd, GUEST_CODE_CACHE);
    assert.ok(cache.length > 100, `a cache of ${cache.length} bytes`);
    // One flipped byte in the middle of the compiled code: V8's header still matches.
    const damaged = Buffer.from(cache);
    damaged[damaged.length >> 1] = damaged[damaged.length >> 1]! ^ 0xff;
    const work = mkdtempSync(join(tmpdir(), "pith-code-cache-e2e-"));
    t.after(() => rmSync(work, { recursive: true, force: true }));
    const initrd = join(work, "rootfs.cpio");
    await overlayInitramfs(boot.initrd, new Map([[GUEST_CODE_CACHE, damaged]]), initrd);

    const machine = await startMachine(t, image, { initrd });
    await machine.whenReady();
    const { status } = await httpGet(machine.ports[0]!.url);
    assert.equal(status, 200);
    assert.match(readFileSync(machine.consoleLog, "utf8"), /pith: V8 refused the app's code cache/);
  });
});
