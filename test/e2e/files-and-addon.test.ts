import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test, type TestContext } from "node:test";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles } from "../../src/image/image-store.ts";
import { inspectImage } from "../../src/image/inspect.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { appImage } from "../support/images.ts";
import { httpGet, missingForMachines, startMachine } from "../support/machines.ts";

/**
 * An app shipping files beside its bundle (`files:`) and using better-sqlite3, whose native addon
 * cannot be bundled: it goes in a pruned node_modules on the runtime disk.
 */
const APP = "test/fixtures/files-and-addon";
const ADDON = "better-sqlite3/build/Release/better_sqlite3.node";

const skip = missingForMachines()
  ?? (existsSync(join(pithRoot(), "node_modules", ADDON)) ? undefined : `needs ${ADDON} (npm install builds it)`);

describe(`${APP} on QEMU`, { skip, timeout: 900_000 }, () => {
  test("serves its declared config and static files, read-only, and runs SQLite through the native addon", async (t) => {
    const image = await appImage(APP);
    const machine = await startMachine(t, image);
    await machine.whenReady();
    const url = machine.ports[0]!.url.replace(/\/$/, "");
    assert.deepEqual(await httpGet(`${url}/config`), { status: 200, body: "greeting = hello from a shipped file\n" });
    assert.deepEqual(await httpGet(`${url}/motd`), { status: 200, body: "welcome to a Pith machine\n" });
    assert.deepEqual(await httpGet(`${url}/static/css/site.css`), { status: 200, body: "body { color: teal; }\n" });
    assert.match((await httpGet(`${url}/static/index.html`)).body, /static page shipped with files:/);
    assert.deepEqual(await httpGet(`${url}/mode?path=/srv/static/index.html`), { status: 200, body: "444" });
    assert.deepEqual(await httpGet(`${url}/mode?path=/runtime/node_modules/better-sqlite3/package.json`), { status: 200, body: "444" });

    const first = await httpGet(`${url}/sqlite?text=a`);
    assert.equal(first.status, 200, first.body);
    assert.equal((JSON.parse(first.body) as { notes: number }).notes, 1);
    assert.equal((JSON.parse((await httpGet(`${url}/sqlite?text=b`)).body) as { notes: number }).notes, 2, "the database lives on in the app");
  });

  test("the image: files where declared, the addon's package pruned on the runtime disk, its bundle without it", async () => {
    const image = await appImage(APP);
    const files = image.record.rootfs.files;
    const data = files.filter((f) => f.role === "data").map((f) => [f.path, f.from]);
    assert.deepEqual(data.sort(), [
      ["/app/config/app.conf", "config/app.conf"],
      ["/etc/motd", "config/motd.txt"],
      ["/srv/static/css/site.css", "static/css/site.css"],
      ["/srv/static/index.html", "static/index.html"],
    ]);
    const modules = files.filter((f) => f.role === "module");
    assert.ok(modules.every((f) => f.on === "disk" && f.path.startsWith("/runtime/node_modules/")));
    const paths = new Set(modules.map((f) => f.path));
    for (const needed of [ADDON, "better-sqlite3/lib/index.js", "bindings/bindings.js", "file-uri-to-path/index.js"]) {
      assert.ok(paths.has(`/runtime/node_modules/${needed}`), needed);
    }
    const leftovers = [...paths].filter((p) => /\.(c|cc|cpp|h|o|a|gyp)$|\/obj\.target\//.test(p));
    assert.deepEqual(leftovers, [], "no sources or build leftovers");
    assert.ok(!paths.has("/runtime/node_modules/fastify/package.json"), "nothing the addon does not depend on");
    assert.equal(files.find((f) => f.path === "/app/node_modules")?.kind, "symlink");

    const boot = await bootFiles(image);
    const onDisk = execFileSync("debugfs", ["-R", "ls -p /node_modules/better-sqlite3/build/Release", boot.disk!], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    assert.match(onDisk, /better_sqlite3\.node/);
    const inRam = execFileSync("cpio", ["-it", "--quiet", "-F", boot.initrd], { encoding: "utf8" });
    assert.match(inRam, /^srv\/static\/css\/site\.css$/m);
    assert.doesNotMatch(inRam, /better_sqlite3/, "the addon is on the disk, not in RAM");
    const bundle = files.find((f) => f.path === "/app/main.cjs")!; // a native external keeps the bundle CommonJS
    assert.ok(bundle.size < 20_000, `better-sqlite3's JavaScript stays out of the bundle (${bundle.size} bytes)`);
  });

  test("pith inspect lists the declared files with where they came from", async () => {
    const info = await inspectImage(await appImage(APP));
    assert.deepEqual(info.files.find((f) => f.path === "/srv/static/index.html"), { path: "/srv/static/index.html", kind: "file", size: 74, role: "data", from: "static/index.html" });
    const human = spawnSync(process.execPath, [join(pithRoot(), "bin/pith.js"), "inspect", info.digest], { encoding: "utf8", timeout: 120_000 });
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /\/etc\/motd\s+26 B\s+data\s+initramfs\s+config\/motd\.txt/);
    assert.match(human.stdout, /\/runtime\/node_modules\/better-sqlite3\/build\/Release\/better_sqlite3\.node\s+[\d.]+ MiB\s+module\s+runtime disk/);
  });

  test("building it twice gives the same digest", async () => {
    const first = await buildImage(await loadAppManifest(APP));
    const second = await buildImage(await loadAppManifest(APP));
    assert.equal(second.record.digest, first.record.digest);
  });
});

describe("files: bad input stops pith build before anything is built", { timeout: 300_000 }, () => {
  /** Runs `pith build` on an app holding `files` with a fresh PITH_HOME, which must stay without images. */
  function build(t: TestContext, manifest: string, setup: (dir: string) => void = () => {}) {
    const dir = mkdtempSync(join(tmpdir(), "pith-files-bad-"));
    const home = mkdtempSync(join(tmpdir(), "pith-files-home-"));
    t.after(() => {
      rmSync(dir, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
    });
    writeFileSync(join(dir, "main.ts"), "");
    mkdirSync(join(dir, "static"));
    writeFileSync(join(dir, "static/index.html"), "<p>hi</p>\n");
    setup(dir);
    writeFileSync(join(dir, "pith.yaml"), manifest);
    const result = spawnSync(process.execPath, [join(pithRoot(), "bin/pith.js"), "build", dir], { encoding: "utf8", timeout: 120_000, env: { ...process.env, PITH_HOME: home } });
    const images = join(home, "images");
    assert.deepEqual(existsSync(images) ? readdirSync(images).filter((e) => /^[0-9a-f]{64}$/.test(e)) : [], [], "no image stored");
    assert.equal(result.status, 1, result.stdout + result.stderr);
    assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/, "no stack trace for a user error");
    return result.stderr;
  }

  test("a glob matching nothing", (t) => {
    const stderr = build(t, "name: bad\nentry: main.ts\nfiles:\n  - static/index.html\n  - \"assets/**/*.png\"\n");
    assert.match(stderr, /pith\.yaml:5:5: files\[1\]: "assets\/\*\*\/\*\.png" matches no file\n\s+fix: /);
  });

  test("a path escaping the app", (t) => {
    const stderr = build(t, "name: bad\nentry: main.ts\nfiles:\n  - { src: ../../etc/passwd, dest: /etc/passwd }\n");
    assert.match(stderr, /pith\.yaml:4:\d+: files\[0\]\.src: "\.\.\/\.\.\/etc\/passwd" leads out of the app directory/);
  });

  test("a symlink leaving the app", (t) => {
    const stderr = build(t, "name: bad\nentry: main.ts\nfiles:\n  - \"static/*\"\n", (dir) => symlinkSync("/etc/hostname", join(dir, "static/host")));
    assert.match(stderr, /pith\.yaml:4:5: files\[0\]: "static\/host" leads through a symlink to \/etc\/hostname, outside the app directory/);
  });
});
