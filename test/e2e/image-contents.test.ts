import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles } from "../../src/image/image-store.ts";
import { inspectImage } from "../../src/image/inspect.ts";
import { readKernelConfig } from "../../src/kernel/kernel-cache.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { appImage } from "../support/images.ts";
import { missingForMachines } from "../support/machines.ts";

const skip = missingForMachines();
const SHELLS = /(^|\/)(sh|bash|dash|ash|busybox|toybox|apt|apt-get|dpkg|ls|cat|env|coreutils)$/;

describe("what an image holds", { skip, timeout: 900_000 }, () => {
  for (const app of ["examples/hello-ts", "examples/static-c", "examples/batch"]) {
    test(`${app}: no shell, no package manager, no coreutils; only init, the app, its runtime and libraries`, async () => {
      if (app.endsWith("static-c")) execFileSync("make", ["-s", "-C", "examples/static-c"]);
      const image = await appImage(app);
      // Read the real archive, not just the record: what cpio lists is what the guest gets.
      const listed = execFileSync("cpio", ["-it", "--quiet", "-F", (await bootFiles(image)).initrd], { encoding: "utf8" })
        .trim()
        .split("\n");
      const inRam = image.record.rootfs.files.filter((f) => f.on !== "disk");
      assert.deepEqual(listed.map((p) => `/${p}`).sort(), inRam.map((f) => f.path).sort());
      // What lives on the runtime disk is exactly what the record says (read with debugfs).
      const boot = await bootFiles(image);
      const onDisk = image.record.rootfs.files.filter((f) => f.on === "disk").map((f) => f.path.replace(/^\/runtime\//, ""));
      if (boot.disk) {
        const ls = execFileSync("debugfs", ["-R", "ls -p /", boot.disk], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
        const names = ls.split("\n").map((l) => l.split("/")[5]).filter((n): n is string => !!n && n !== "." && n !== ".." && n !== "lost+found");
        assert.deepEqual(names.sort(), onDisk.sort());
      } else assert.deepEqual(onDisk, []);
      // /pith/env and /pith/argv are init's data files, not programs.
      const offenders = listed.filter((p) => !p.startsWith("pith/") && SHELLS.test(p));
      assert.deepEqual(offenders, [], `unexpected programs in ${app}`);
      const roles = new Set(image.record.rootfs.files.filter((f) => f.kind === "file").map((f) => f.role));
      for (const role of roles) assert.ok(["init", "app", "runtime", "library", "config"].includes(role), role);
      const executables = image.record.rootfs.files.filter((f) => f.kind === "file" && ["init", "app", "runtime"].includes(f.role));
      assert.ok(executables.length <= 3, `executables: ${executables.map((f) => f.path).join(", ")}`);
    });
  }

  test("the batch kernel has no network device compiled in; the services' kernels have one", async () => {
    const batch = await appImage("examples/batch");
    const hello = await appImage("examples/hello-ts");
    const batchConfig = await readKernelConfig(batch.record.kernel.configHash);
    // base has sockets, IPv4 included (header-level options, see src/kernel/fragments/base.config):
    // without a network device they reach only the machine itself, and QEMU gives it no NIC (qemu-argv.test.ts).
    assert.doesNotMatch(batchConfig, /^CONFIG_NETDEVICES=y/m);
    assert.doesNotMatch(batchConfig, /^CONFIG_VIRTIO_NET=y/m);
    assert.deepEqual(batch.record.kernel.fragments, ["base", "node-runtime", "runtime-disk"]);
    assert.match(await readKernelConfig(hello.record.kernel.configHash), /^CONFIG_VIRTIO_NET=y/m);
    assert.ok(batch.record.kernel.options < hello.record.kernel.options);
  });

  test("building the same app twice gives the same digest, byte for byte", async () => {
    for (const app of ["examples/static-c", "examples/hello-ts"]) {
      const first = await buildImage(await loadAppManifest(app));
      const second = await buildImage(await loadAppManifest(app));
      assert.equal(second.record.digest, first.record.digest, app);
    }
  });

  test("a different app gives a different digest", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pith-variant-"));
    try {
      execFileSync("cp", ["-r", "examples/batch/.", dir]);
      execFileSync("sed", ["-i", 's/EXIT_CODE: "3"/EXIT_CODE: "4"/', join(dir, "pith.yaml")]);
      const variant = await buildImage(await loadAppManifest(dir));
      assert.notEqual(variant.record.digest, (await appImage("examples/batch")).record.digest);
      assert.ok(readdirSync(dir).includes("pith.yaml"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("pith inspect's data: digest, every file with its size, kernel options, capabilities", async () => {
    const info = await inspectImage(await appImage("examples/static-c"));
    assert.match(info.digest, /^sha256:[0-9a-f]{64}$/);
    const server = info.files.find((f) => f.path === "/app/server");
    assert.ok(server && server.size > 1000, "the app binary with its size");
    assert.ok(info.files.find((f) => f.path === "/init"));
    assert.ok(info.kernel.options > 100 && info.kernel.options < 1000, `options: ${info.kernel.options}`);
    assert.deepEqual(info.kernel.fragments.map((f) => f.name), ["base", "network"]);
    assert.deepEqual(info.capabilities.listen, [{ port: 8080, protocol: "http" }]);
    assert.deepEqual(info.capabilities.egress, []);
    if (info.generic) assert.ok(info.generic.options > info.kernel.options * 3, "a generic kernel enables far more");
  });
});
