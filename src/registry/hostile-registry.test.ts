import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { isPithError } from "../shared/errors.ts";
import { useTempPithHome } from "../shared/temp-pith-home.ts";
import { manifestBytes, PITH_CONFIG_MEDIA_TYPE, sha256Digest } from "./artifact.ts";
import { pullImage } from "./pull.ts";
import { parseRegistryReference } from "./registry-reference.ts";
import { testRecord } from "./test-image.ts";

/**
 * A registry that lies, stalls, floods and points elsewhere, on loopback: every answer a
 * hostile registry could give is refused with a clear error, nothing it sent is kept in the
 * image store, and nothing but the named registry is contacted.
 */
type Handler = (req: IncomingMessage, res: ServerResponse) => boolean;

interface Artifact {
  manifest: Buffer;
  blobs: Map<string, Buffer>;
  imageDigest: string;
}

function artifact(options: { rootfs?: Buffer; rootfsBytesInRecord?: Buffer; rootfsLayer?: Buffer } = {}): Artifact {
  const kernel = randomBytes(4096);
  const rootfs = options.rootfs ?? randomBytes(2048);
  // The record may describe other bytes than the layer unpacks to (a gzip bomb, a swap).
  const record = testRecord("hostile", kernel, options.rootfsBytesInRecord ?? rootfs);
  const config = Buffer.from(JSON.stringify(record));
  const kgz = gzipSync(kernel);
  const rgz = options.rootfsLayer ?? gzipSync(rootfs);
  const blobs = new Map([[sha256Digest(config), config], [sha256Digest(kgz), kgz], [sha256Digest(rgz), rgz]]);
  const manifest = manifestBytes(
    { mediaType: PITH_CONFIG_MEDIA_TYPE, digest: sha256Digest(config), size: config.length },
    [{ role: "kernel", digest: sha256Digest(kgz), size: kgz.length }, { role: "rootfs", digest: sha256Digest(rgz), size: rgz.length }],
    record.digest,
  );
  return { manifest, blobs, imageDigest: record.digest };
}

class FakeRegistry {
  server: Server;
  requests: string[] = [];
  handlers: Handler[] = [];
  art: Artifact = artifact();

  constructor() {
    this.server = createServer((req, res) => {
      this.requests.push(`${req.method} ${req.url}`);
      for (const handler of this.handlers) if (handler(req, res)) return;
      this.serve(req, res);
    });
  }

  serve(req: IncomingMessage, res: ServerResponse): void {
    const manifest = /^\/v2\/hostile\/manifests\/(.+)$/.exec(req.url ?? "");
    if (manifest) {
      res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json", "docker-content-digest": sha256Digest(this.art.manifest) });
      res.end(this.art.manifest);
      return;
    }
    const blob = /^\/v2\/hostile\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? "");
    const bytes = blob && this.art.blobs.get(blob[1]!);
    if (bytes) {
      res.writeHead(200, { "content-length": bytes.length });
      res.end(bytes);
      return;
    }
    res.writeHead(404).end();
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const refused = (pattern: RegExp) => (e: unknown) => isPithError(e) && e.code === "REGISTRY_REFUSED" && pattern.test(e.message);

describe("a hostile registry", () => {
  const home = useTempPithHome("pith-hostile-");
  const registry = new FakeRegistry();
  const elsewhere = new FakeRegistry();
  let address = "";
  let other = "";
  before(async () => {
    address = await registry.listen();
    other = await elsewhere.listen();
  });
  after(async () => {
    await registry.close();
    await elsewhere.close();
  });
  beforeEach(() => {
    registry.handlers = [];
    registry.requests = [];
    registry.art = artifact();
    elsewhere.requests = [];
  });

  const pull = (options: Parameters<typeof pullImage>[1] = {}) => pullImage(parseRegistryReference(`${address}/hostile:v1`), { env: {}, ...options });
  /** The image store holds nothing: no image, no staging dir, no lock. */
  const nothingKept = async () => {
    const dir = join(home.home(), "images");
    assert.deepEqual(existsSync(dir) ? await readdir(dir) : [], []);
  };

  it("an honest answer is pulled (the fake itself works)", async () => {
    const result = await pull();
    assert.equal(result.image.record.digest, registry.art.imageDigest);
    const { rm } = await import("node:fs/promises");
    await rm(join(home.home(), "images"), { recursive: true, force: true });
  });

  it("a manifest past 4 MiB is refused without being read whole", async () => {
    registry.handlers.push((req, res) => {
      if (!req.url?.includes("/manifests/")) return false;
      res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" });
      // Streams forever unless the client hangs up.
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (res.write(chunk)) if (res.destroyed) return;
      };
      res.on("drain", pump);
      pump();
      return true;
    });
    await assert.rejects(pull(), refused(/the manifest is more than the 4194304 bytes allowed/));
    await nothingKept();
  });

  it("a manifest whose bytes do not hash to the digest asked for is refused", async () => {
    const pinned = `${address}/hostile@${sha256Digest("something else")}`;
    await assert.rejects(pullImage(parseRegistryReference(pinned), { env: {} }), refused(/hashes to sha256:[0-9a-f]{64}, not sha256:/));
    registry.handlers.push((req, res) => {
      if (!req.url?.includes("/manifests/")) return false;
      res.writeHead(200, { "docker-content-digest": sha256Digest("another") }).end(registry.art.manifest);
      return true;
    });
    await assert.rejects(pull(), refused(/hashes to/));
    await nothingKept();
  });

  it("a blob longer than the manifest declares is cut off and refused", async () => {
    registry.handlers.push((req, res) => {
      if (!req.url?.includes("/blobs/") || !req.url.includes(sha256Digest(gzipKernelOf(registry.art)).slice(7))) return false;
      // No Content-Length: the registry just keeps sending.
      res.writeHead(200, { "transfer-encoding": "chunked" });
      res.write(gzipKernelOf(registry.art));
      res.end(randomBytes(1024 * 1024));
      return true;
    });
    await assert.rejects(pull(), refused(/kernel blob is longer than the \d+ bytes the manifest declares/));
    await nothingKept();
  });

  it("a blob whose bytes differ from its digest is refused", async () => {
    const kernel = gzipKernelOf(registry.art);
    registry.art.blobs.set(sha256Digest(kernel), Buffer.from(kernel.map((b, i) => (i === 10 ? b ^ 1 : b))));
    await assert.rejects(pull(), refused(/kernel blob hashes to sha256:[0-9a-f]{64}, not sha256:/));
    await nothingKept();
  });

  it("a layer that unpacks to more than its record declares (a gzip bomb) is refused", async () => {
    registry.art = artifact({ rootfs: Buffer.alloc(64 * 1024 * 1024), rootfsBytesInRecord: Buffer.alloc(1000) });
    await assert.rejects(pull(), refused(/rootfs unpacks to more than the 1000 bytes its record declares/));
    await nothingKept();
  });

  it("a layer that unpacks to other bytes than its record's, or is not gzip, is refused", async () => {
    registry.art = artifact({ rootfs: Buffer.alloc(1000, 1), rootfsBytesInRecord: Buffer.alloc(1000, 2) });
    await assert.rejects(pull(), refused(/the rootfs unpacks to bytes hashing to [0-9a-f]{64}, not the record's/));
    await nothingKept();
    registry.art = artifact({ rootfsLayer: randomBytes(5000) });
    await assert.rejects(pull(), refused(/the rootfs layer is not valid gzip/));
    await nothingKept();
  });

  it("a record that does not hash to its own digest is refused", async () => {
    const record = JSON.parse(registry.art.blobs.get(JSON.parse(registry.art.manifest.toString()).config.digest)!.toString());
    const forged = Buffer.from(JSON.stringify({ ...record, argv: ["/evil"] }));
    const manifest = JSON.parse(registry.art.manifest.toString());
    manifest.config = { ...manifest.config, digest: sha256Digest(forged), size: forged.length };
    registry.art.blobs.set(sha256Digest(forged), forged);
    registry.art.manifest = Buffer.from(JSON.stringify(manifest));
    await assert.rejects(pull(), refused(/contents hash to sha256:[0-9a-f]{64}, not to its digest/));
    await nothingKept();
  });

  it("a token realm on another origin is refused, and that origin is never contacted", async () => {
    registry.handlers.push((_req, res) => {
      res.writeHead(401, { "www-authenticate": `Bearer realm="http://${other}/token",service="x"` }).end();
      return true;
    });
    await assert.rejects(pull({ credential: { username: "u", password: "secret" } }), (e) => /token realm http:\/\/127\.0\.0\.1:\d+ is not the registry itself/.test((e as Error).message));
    assert.deepEqual(elsewhere.requests, []);
    await nothingKept();
  });

  it("a redirect to another origin is refused, and that origin is never contacted", async () => {
    registry.handlers.push((req, res) => {
      if (!req.url?.includes("/blobs/")) return false;
      res.writeHead(307, { location: `http://${other}${req.url}` }).end();
      return true;
    });
    await assert.rejects(pull(), refused(/a redirect leads to http:\/\/127\.0\.0\.1:\d+; Pith contacts only the registry/));
    assert.deepEqual(elsewhere.requests, []);
    await nothingKept();
  });

  it("a registry that stops sending mid-blob is cut off by the idle bound", async () => {
    registry.handlers.push((req, res) => {
      if (!req.url?.includes("/blobs/") || req.url.includes(JSON.parse(registry.art.manifest.toString()).config.digest)) return false;
      res.writeHead(200);
      res.write(Buffer.alloc(10));
      return true; // and nothing more, ever
    });
    const started = Date.now();
    await assert.rejects(pull({ idleMs: 500 }), (e) => /sent nothing for 0.5 s|did not answer/.test((e as Error).message));
    assert.ok(Date.now() - started < 10_000);
    await nothingKept();
  });

  it("a registry that trickles a byte at a time is cut off by the whole pull's bound", async () => {
    registry.handlers.push((req, res) => {
      if (!req.url?.includes("/blobs/") || req.url.includes(JSON.parse(registry.art.manifest.toString()).config.digest)) return false;
      res.writeHead(200);
      const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : res.write(Buffer.alloc(1))), 50);
      res.on("close", () => clearInterval(timer));
      return true;
    });
    const started = Date.now();
    await assert.rejects(pull({ idleMs: 5000, timeoutMs: 1000 }), refused(/the pull took longer than 1 s/));
    assert.ok(Date.now() - started < 5000, "cut at the pull's bound, not the idle one");
    await nothingKept();
  });

  it("a registry nobody answers at is a clear error naming it", async () => {
    const { freeLoopbackPort } = await import("../shared/free-port.ts");
    const port = await freeLoopbackPort();
    await assert.rejects(pullImage(parseRegistryReference(`127.0.0.1:${port}/hostile:v1`), { env: {} }), (e) => isPithError(e) && e.code === "REGISTRY_UNREACHABLE" && e.message.includes(`127.0.0.1:${port}`));
  });

  it("an upload location on another origin is refused when pushing, and that origin is never contacted", async () => {
    const { makeTestImage } = await import("./test-image.ts");
    const { pushImage } = await import("./push.ts");
    const image = await makeTestImage("pushed");
    registry.handlers.push((req, res) => {
      if (req.method === "HEAD") return void res.writeHead(404).end(), true;
      if (req.method === "POST") return void res.writeHead(202, { location: `http://${other}/v2/hostile/blobs/uploads/x` }).end(), true;
      return false;
    });
    await assert.rejects(pushImage(image, parseRegistryReference(`${address}/hostile:v1`), { env: {} }), refused(/the upload location leads to http:\/\/127\.0\.0\.1:\d+/));
    assert.deepEqual(elsewhere.requests, []);
    const { rm } = await import("node:fs/promises");
    await rm(join(home.home(), "images"), { recursive: true, force: true });
  });

  it("a pull removes what pulls killed mid-way left behind, and nothing of a live one", async () => {
    const { spawnSync } = await import("node:child_process");
    const { mkdir } = await import("node:fs/promises");
    const dead = spawnSync(process.execPath, ["-e", "process.pid"]).pid!;
    const store = join(home.home(), "images");
    const abandoned = join(store, `.pull-${"a".repeat(12)}-${dead}-0123abcd`);
    const live = join(store, `.pull-${"b".repeat(12)}-${process.pid}-0123abcd`);
    await mkdir(abandoned, { recursive: true });
    await mkdir(live, { recursive: true });
    await pull();
    assert.equal(existsSync(abandoned), false);
    assert.equal(existsSync(live), true);
    const { rm } = await import("node:fs/promises");
    await rm(store, { recursive: true, force: true });
  });

  it("a bearer challenge on its own origin gets a token, asked with the credential, and the pull goes through", async () => {
    const seen: string[] = [];
    registry.handlers.push((req, res) => {
      if (req.url?.startsWith("/token?")) {
        seen.push(`${req.headers.authorization} ${new URL(req.url, "http://x").searchParams.get("scope")}`);
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: "t0k" }));
        return true;
      }
      if (req.headers.authorization === "Bearer t0k") return false;
      res.writeHead(401, { "www-authenticate": `Bearer realm="http://${address}/token",service="fake"` }).end();
      return true;
    });
    const result = await pull({ credential: { username: "u", password: "p" } });
    assert.equal(result.image.record.digest, registry.art.imageDigest);
    assert.deepEqual(seen, [`Basic ${Buffer.from("u:p").toString("base64")} repository:hostile:pull`]);
  });
});

function gzipKernelOf(art: Artifact): Buffer {
  const manifest = JSON.parse(art.manifest.toString()) as { layers: { digest: string }[] };
  return art.blobs.get(manifest.layers[0]!.digest)!;
}
