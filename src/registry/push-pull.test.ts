import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, open, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { isPithError } from "../shared/errors.ts";
import { imageStoreDir, pithRoot } from "../shared/paths.ts";
import { bootFiles, resolveImage, type StoredImage } from "../image/image-store.ts";
import { startRegistry, registryMissing, type TestRegistry } from "../../test/support/registry.ts";
import { parsePithManifest } from "./artifact.ts";
import { pullImage, resolveRegistryImage } from "./pull.ts";
import { pushImage } from "./push.ts";
import { parseRegistryReference } from "./registry-reference.ts";
import { makeTestImage } from "./test-image.ts";

/**
 * Push and pull against a real registry: Debian's docker-registry 2.8 on loopback. The source
 * image lives in one PITH_HOME, pulls go to fresh, empty ones, as on a node that shares nothing.
 */
const skip = registryMissing();

async function withHome<T>(home: string, work: () => Promise<T>): Promise<T> {
  const saved = process.env.PITH_HOME;
  process.env.PITH_HOME = home;
  try {
    return await work();
  } finally {
    if (saved === undefined) delete process.env.PITH_HOME;
    else process.env.PITH_HOME = saved;
  }
}

const isCode = (code: string) => (e: unknown) => isPithError(e) && e.code === code;

describe("push and pull against docker-registry", { skip }, () => {
  let registry: TestRegistry;
  let source: string;
  let image: StoredImage;
  const homes: string[] = [];
  const emptyHome = async () => {
    const home = await mkdtemp(join(tmpdir(), "pith-pull-"));
    homes.push(home);
    return home;
  };

  before(async () => {
    registry = await startRegistry();
    source = await emptyHome();
    image = await withHome(source, () => makeTestImage("regtest", { disk: true }));
  });
  after(async () => {
    await registry?.stop();
    for (const home of homes) await rm(home, { recursive: true, force: true });
  });

  it("pushes an image and pulls it into an empty PITH_HOME: same digest, same bytes", async () => {
    const pushed = await withHome(source, () => pushImage(image, parseRegistryReference(`${registry.address}/pith/regtest:v1`)));
    assert.equal(pushed.uploaded, 4);
    assert.match(pushed.pinned, new RegExp(`^${registry.address}/pith/regtest@sha256:[0-9a-f]{64}$`));
    // The same image again: the registry has every blob, and the manifest's digest is the same.
    const again = await withHome(source, () => pushImage(image, parseRegistryReference(`${registry.address}/pith/regtest:v1`)));
    assert.equal(again.uploaded, 0);
    assert.equal(again.manifestDigest, pushed.manifestDigest);

    const home = await emptyHome();
    const pulled = await withHome(home, () => pullImage(parseRegistryReference(`${registry.address}/pith/regtest:v1`), { setName: true }));
    assert.equal(pulled.downloaded, true);
    assert.equal(pulled.manifestDigest, pushed.manifestDigest);
    assert.equal(pulled.image.record.digest, image.record.digest);
    for (const file of ["image.json", "vmlinux.gz", "rootfs.cpio.gz", "runtime.ext2.gz"]) {
      assert.deepEqual(await readFile(join(pulled.image.dir, file)), await readFile(join(image.dir, file)), file);
    }
    const [mine, theirs] = [await withHome(home, () => bootFiles(pulled.image)), await withHome(source, () => bootFiles(image))];
    assert.deepEqual(await readFile(mine.kernel), await readFile(theirs.kernel));
    assert.deepEqual(await readFile(mine.disk!), await readFile(theirs.disk!));
    // `pith pull` names it locally, as a build would.
    assert.equal((await withHome(home, () => resolveImage("regtest"))).record.digest, image.record.digest);
  });

  it("pulls by digest and by tag to the same image; a second pull downloads nothing", async () => {
    const { pinned } = await withHome(source, () => pushImage(image, parseRegistryReference(`${registry.address}/pith/regtest:v2`)));
    const home = await emptyHome();
    const byDigest = await withHome(home, () => pullImage(parseRegistryReference(pinned), { expectImageDigest: image.record.digest }));
    assert.equal(byDigest.downloaded, true);
    assert.equal(byDigest.pinned, pinned);
    const byTag = await withHome(home, () => pullImage(parseRegistryReference(`${registry.address}/pith/regtest:v2`)));
    assert.equal(byTag.downloaded, false);
    assert.equal(byTag.image.record.digest, image.record.digest);
  });

  it("a manifest is a Pith artifact: an OCI image manifest with Pith's media types", async () => {
    const resolved = await resolveRegistryImage(parseRegistryReference(`${registry.address}/pith/regtest:v1`));
    const manifest = await fetch(`http://${registry.address}/v2/pith/regtest/manifests/${resolved.manifestDigest}`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
    assert.equal(manifest.headers.get("content-type"), "application/vnd.oci.image.manifest.v1+json");
    const parsed = parsePithManifest(Buffer.from(await manifest.arrayBuffer()));
    assert.deepEqual(parsed.layers.map((l) => l.role), ["kernel", "rootfs", "disk"]);
    assert.equal(parsed.imageDigest, image.record.digest);
  });

  it("a missing tag or digest is a clear user error", async () => {
    const home = await emptyHome();
    await withHome(home, async () => {
      await assert.rejects(pullImage(parseRegistryReference(`${registry.address}/pith/regtest:nope`)), (e) => isCode("IMAGE_NOT_IN_REGISTRY")(e) && /has no manifest nope/.test((e as Error).message));
      await assert.rejects(pullImage(parseRegistryReference(`${registry.address}/pith/regtest@sha256:${"0".repeat(64)}`)), isCode("IMAGE_NOT_IN_REGISTRY"));
      await assert.rejects(pullImage(parseRegistryReference(`${registry.address}/pith/absent:v1`)), isCode("IMAGE_NOT_IN_REGISTRY"));
    });
  });

  it("a pull expecting another image digest is refused before any layer is fetched", async () => {
    const home = await emptyHome();
    await withHome(home, () => assert.rejects(pullImage(parseRegistryReference(`${registry.address}/pith/regtest:v1`), { expectImageDigest: `sha256:${"1".repeat(64)}` }), isCode("REGISTRY_REFUSED")));
    assert.deepEqual(await storedEntries(home), []);
  });

  it("a blob tampered with in the registry's storage is refused and nothing is cached", async () => {
    const other = await withHome(source, () => makeTestImage("tampered"));
    const { pinned } = await withHome(source, () => pushImage(other, parseRegistryReference(`${registry.address}/pith/tampered:v1`)));
    const resolved = await resolveRegistryImage(parseRegistryReference(pinned));
    const rootfs = resolved.manifest.layers.find((l) => l.role === "rootfs")!;
    // Flip one byte in the middle: same size, another digest.
    const file = await open(registry.blobPath(rootfs.digest), "r+");
    const at = Math.floor(rootfs.size / 2);
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, at);
    byte[0] = byte[0]! ^ 0xff;
    await file.write(byte, 0, 1, at);
    await file.close();
    const home = await emptyHome();
    await withHome(home, () =>
      assert.rejects(pullImage(parseRegistryReference(pinned)), (e) => isCode("REGISTRY_REFUSED")(e) && /rootfs blob hashes to sha256:[0-9a-f]{64}, not /.test((e as Error).message)),
    );
    assert.deepEqual(await storedEntries(home), [], "nothing of the refused pull is left in the image store");
  });

  it("pith push and pith pull on the command line: the pinned reference, the digest, clear errors", async () => {
    const pith = (home: string, ...args: string[]) =>
      spawnSync(process.execPath, [join(pithRoot(), "bin/pith.js"), ...args], { env: { ...process.env, PITH_HOME: home }, encoding: "utf8", timeout: 60_000 });
    const push = pith(source, "push", "regtest", `${registry.address}/pith/cli:v1`, "-q");
    assert.equal(push.status, 0, push.stderr);
    const pinned = push.stdout.trim();
    assert.match(pinned, new RegExp(`^${registry.address}/pith/cli@sha256:[0-9a-f]{64}$`));
    const home = await emptyHome();
    const pull = pith(home, "pull", pinned);
    assert.equal(pull.status, 0, pull.stderr);
    assert.equal(pull.stdout.trim(), image.record.digest);
    assert.match(pull.stderr, /every blob verified/);
    const bad = pith(home, "pull", "hello-ts");
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /"hello-ts" is not a registry reference/);
    const absent = pith(home, "pull", `${registry.address}/pith/cli:nope`);
    assert.equal(absent.status, 1);
    assert.match(absent.stderr, /has no manifest nope/);
  });

  it("through a registry that asks for a bearer token: push and pull with credentials, refused without", async () => {
    const { server, address } = await bearerFront(registry.address);
    try {
      const auth = { credential: { username: "ci", password: "s3cret" } };
      const pushed = await withHome(source, () => pushImage(image, parseRegistryReference(`${address}/pith/private:v1`), auth));
      const home = await emptyHome();
      const pulled = await withHome(home, () => pullImage(parseRegistryReference(pushed.pinned), auth));
      assert.equal(pulled.image.record.digest, image.record.digest);
      await withHome(await emptyHome(), () =>
        assert.rejects(pullImage(parseRegistryReference(pushed.pinned), { env: {} }), (e) => isCode("REGISTRY_UNAUTHORIZED")(e) && /registry-auth\.json/.test((e as { hint?: string }).hint ?? "")),
      );
      await withHome(await emptyHome(), () =>
        assert.rejects(pullImage(parseRegistryReference(pushed.pinned), { credential: { username: "ci", password: "wrong" } }), isCode("REGISTRY_UNAUTHORIZED")),
      );
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

/**
 * A front for the real registry that does what hosted registries do: 401 with a Bearer
 * challenge whose realm is its own /token, which hands out a token for Basic ci:s3cret.
 */
async function bearerFront(upstream: string): Promise<{ server: Server; address: string }> {
  const [host, port] = upstream.split(":");
  const server = createServer((req, res) => {
    const self = req.headers.host!;
    if (req.url?.startsWith("/token")) {
      if (req.headers.authorization !== `Basic ${Buffer.from("ci:s3cret").toString("base64")}`) return void res.writeHead(401).end();
      return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: "front-token" }));
    }
    if (req.headers.authorization !== "Bearer front-token") {
      return void res.writeHead(401, { "www-authenticate": `Bearer realm="http://${self}/token",service="front"` }).end();
    }
    const { authorization: _a, ...headers } = req.headers;
    const forward = request({ host, port: Number(port), method: req.method, path: req.url, headers }, (answer) => {
      res.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(res);
    });
    forward.on("error", () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** What the image store holds besides the empty lock dir: images, staging dirs, locks. */
async function storedEntries(home: string): Promise<string[]> {
  const dir = join(home, "images");
  if (!existsSync(dir)) return [];
  return (await readdir(dir)).filter((e) => e !== "names");
}

// imageStoreDir is read from PITH_HOME at each call: a guard that withHome really switches it.
it("withHome switches the image store", async () => {
  assert.equal(await withHome("/nonexistent-home", async () => imageStoreDir()), "/nonexistent-home/images");
});
