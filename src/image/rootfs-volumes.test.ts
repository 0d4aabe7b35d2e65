import assert from "node:assert/strict";
import { copyFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseAppManifest } from "../manifest/app-manifest.ts";
import { tempApp } from "../manifest/test-support.ts";
import { planRootfs, volumeMountLines } from "./rootfs.ts";

/** A dynamically linked program (the host's `true`), so the image holds libraries under /lib. */
function appWithVolumes(t: import("node:test").TestContext, volumes: string): string {
  const dir = tempApp(t);
  copyFileSync("/usr/bin/true", path.join(dir, "server"));
  writeFileSync(path.join(dir, "pith.yaml"), `name: a\nbinary: server\nvolumes: ${volumes}\n`);
  return dir;
}

test("init mounts volumes writable after the runtime disk, in declaration order", () => {
  const volumes = [{ name: "data", mount: "/data", sizeMiB: 64 }, { name: "cache", mount: "/var/cache", sizeMiB: 16 }];
  assert.deepEqual(volumeMountLines(volumes, false), ["vda /data ext4 rw", "vdb /var/cache ext4 rw"]);
  assert.deepEqual(volumeMountLines(volumes, true), ["vdb /data ext4 rw", "vdc /var/cache ext4 rw"]);
});

test("the image gets the mount points and init's mount lines", async (t) => {
  const dir = appWithVolumes(t, "[{ name: data, mount: /srv/data, size: 64M }]");
  const plan = await planRootfs(parseAppManifest(`name: a\nbinary: server\nvolumes: [{ name: data, mount: /srv/data, size: 64M }]\n`, path.join(dir, "pith.yaml")));
  const mounts = plan.entries.find((e) => e.path === "pith/mounts");
  assert.equal(Buffer.from(mounts && "data" in mounts ? mounts.data! : []).toString(), "vda /srv/data ext4 rw\n");
  assert.ok(plan.files.some((f) => f.path === "/srv/data" && f.kind === "dir"));
});

test("a volume mounted over the app's own files (its libraries) is refused at build, naming the file", async (t) => {
  const dir = appWithVolumes(t, "[{ name: libs, mount: /lib, size: 64M }]");
  const manifest = parseAppManifest(`name: a\nbinary: server\nvolumes: [{ name: libs, mount: /lib, size: 64M }]\n`, path.join(dir, "pith.yaml"));
  await assert.rejects(planRootfs(manifest), /volume "libs" mounted at \/lib would hide \/lib\/.*libc\.so\.6, part of the app's image/);
});
