import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test, type TestContext } from "node:test";
import type { Machine, VolumeAttachment } from "../../src/hypervisor/hypervisor.ts";
import { discoverMachines } from "../../src/hypervisor/qemu/qemu-discovery.ts";
import { readKernelConfig } from "../../src/kernel/kernel-cache.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { ensureVolumeFile } from "../../src/volume/volume-file.ts";
import { appImage } from "../support/images.ts";
import { missingForMachines, startMachine } from "../support/machines.ts";

const skip = missingForMachines();
const FIXTURE = "test/fixtures/volume-counter";

/** Fresh volume files for the fixture's two volumes, removed when the test ends. */
async function freshVolumes(t: TestContext): Promise<VolumeAttachment[]> {
  const dir = mkdtempSync(join(tmpdir(), "pith-volumes-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await ensureVolumeFile(join(dir, "data.ext4"), 64);
  await ensureVolumeFile(join(dir, "scratch.ext4"), 32);
  return [{ name: "data", path: join(dir, "data.ext4") }, { name: "scratch", path: join(dir, "scratch.ext4") }];
}

/** The counter's line from a ready machine's console (it prints it before saying ready). */
function counterLine(machine: Machine): { count: number; dataMiB: number; scratchMiB: number } {
  const m = /volume-counter: count=(-?\d+) data=(-?\d+) scratch=(-?\d+)/.exec(readFileSync(machine.consoleLog, "utf8"));
  assert.ok(m, `no counter line in the console:\n${readFileSync(machine.consoleLog, "utf8")}`);
  return { count: Number(m[1]), dataMiB: Number(m[2]), scratchMiB: Number(m[3]) };
}

describe("volumes on QEMU", { skip, timeout: 900_000 }, () => {
  test("a volume written by one machine is read by its replacement after a kill -9, and never has two writers", async (t) => {
    execFileSync("make", ["-s", "-C", join(pithRoot(), FIXTURE)]);
    const image = await appImage(FIXTURE);
    const volumes = await freshVolumes(t);

    const first = await startMachine(t, image, { volumes });
    await first.whenReady();
    const seen = counterLine(first);
    assert.equal(seen.count, 1);
    // Mounted in declaration order: each mount has its own volume's size (ext4 keeps a little).
    assert.ok(seen.dataMiB > 48 && seen.dataMiB <= 64, `data is the 64 MiB volume: ${seen.dataMiB}`);
    assert.ok(seen.scratchMiB > 16 && seen.scratchMiB <= 32, `scratch is the 32 MiB volume: ${seen.scratchMiB}`);
    if (process.getuid?.() === 0) {
      assert.equal(statSync(volumes[0]!.path).uid, first.jail?.uid, "the volume belongs to the machine's jailed uid while attached");
    }

    // A second writer is refused before its QEMU starts.
    await assert.rejects(startMachine(t, image, { volumes }), /VOLUME_IN_USE|attached to machine test\//);
    const qemus = (await discoverMachines()).filter((m) => m.owner === "test" && m.machineId.startsWith("volume-counter-"));
    assert.deepEqual(qemus.map((p) => p.pid), [first.pid], "only the first machine's QEMU runs");

    // kill -9 of its QEMU: no unmount, the journal is left to replay.
    process.kill(first.pid, "SIGKILL");
    await first.whenExited();
    if (process.getuid?.() === 0) assert.equal(statSync(volumes[0]!.path).uid, 0, "given back to Pith once the machine is gone");

    const replacement = await startMachine(t, image, { volumes });
    await replacement.whenReady();
    assert.equal(counterLine(replacement).count, 2, "the replacement read what the killed machine wrote");
    const exit = await replacement.stop(5000);
    assert.equal(exit.code, 0, exit.reason);

    // Stopped gracefully, init unmounted the volume: the filesystem is clean, no journal to replay.
    const header = execFileSync("dumpe2fs", ["-h", volumes[0]!.path], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    assert.match(header, /Filesystem state:\s+clean/);
    assert.doesNotMatch(header, /needs_recovery/);
    const third = await startMachine(t, image, { volumes });
    await third.whenReady();
    assert.equal(counterLine(third).count, 3);
  });

  test("a machine must be given exactly the volumes its image declares", async (t) => {
    execFileSync("make", ["-s", "-C", join(pithRoot(), FIXTURE)]);
    const image = await appImage(FIXTURE);
    const volumes = await freshVolumes(t);
    await assert.rejects(startMachine(t, image, {}), /declares volumes \[data, scratch\], the machine was given \[none\]/);
    await assert.rejects(startMachine(t, image, { volumes: [volumes[1]!, volumes[0]!] }), /VOLUMES_MISMATCH|declares volumes/);
    await assert.rejects(startMachine(t, image, { volumes: [volumes[0]!, { name: "scratch", path: "/nonexistent/x.ext4" }] }), /is not a regular file/);
  });

  test("only an image that declares volumes can mount a writable disk: its kernel and pith inspect say which options they added", async () => {
    execFileSync("make", ["-s", "-C", join(pithRoot(), FIXTURE)]);
    execFileSync("make", ["-s", "-C", join(pithRoot(), "examples/static-c")]);
    const withVolumes = await appImage(FIXTURE);
    const without = await appImage("examples/static-c");
    const config = await readKernelConfig(withVolumes.record.kernel.configHash);
    assert.match(config, /^CONFIG_VIRTIO_BLK=y/m);
    assert.match(config, /^CONFIG_EXT4_FS=y/m);
    const plain = await readKernelConfig(without.record.kernel.configHash);
    // Every kernel has the block layer and virtio-blk (header-level, in base); static-c's has no
    // filesystem to mount a disk with, and its machine is given no disk (qemu-argv.test.ts).
    assert.doesNotMatch(plain, /^CONFIG_(EXT4_FS|EXT2_FS)=y/m, "static-c has no disk filesystem");

    const out = execFileSync(process.execPath, [join(pithRoot(), "bin/pith.js"), "inspect", withVolumes.record.digest, "--json"], { encoding: "utf8" });
    const inspection = JSON.parse(out) as { capabilities: { volumes: unknown[] }; kernel: { fragments: { name: string; options: string[] }[] } };
    assert.deepEqual(inspection.capabilities.volumes, [{ name: "data", mount: "/data", sizeMiB: 64 }, { name: "scratch", mount: "/var/scratch", sizeMiB: 32 }]);
    const fragment = inspection.kernel.fragments.find((f) => f.name === "volume");
    assert.ok(fragment?.options.includes("EXT4_FS"), JSON.stringify(fragment));
    const text = execFileSync(process.execPath, [join(pithRoot(), "bin/pith.js"), "inspect", withVolumes.record.digest], { encoding: "utf8" });
    assert.match(text, /volumes\s+data at \/data \(64 MiB/);
  });
});
