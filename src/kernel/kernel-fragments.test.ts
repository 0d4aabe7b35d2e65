import assert from "node:assert/strict";
import { test } from "node:test";
import { enabledOptions } from "./kernel-cache.ts";
import { fragmentsFor, parseFragmentNames, readFragment } from "./kernel-fragments.ts";

test("fragments follow declared capabilities, starting from base", () => {
  assert.deepEqual(fragmentsFor({ network: false, runtime: "native", vcpus: 1, volumes: false }), ["base"]);
  assert.deepEqual(fragmentsFor({ network: true, runtime: "native", vcpus: 1, volumes: false }), ["base", "network"]);
  assert.deepEqual(fragmentsFor({ network: false, runtime: "node", vcpus: 1, volumes: false }), ["base", "node-runtime", "runtime-disk"]);
  assert.deepEqual(fragmentsFor({ network: true, runtime: "node", vcpus: 2, volumes: false }), ["base", "network", "node-runtime", "runtime-disk", "smp"]);
});

test("only an app that declares volumes gets the volume fragment: ext4", async () => {
  assert.deepEqual(fragmentsFor({ network: false, runtime: "native", vcpus: 1, volumes: true }), ["base", "volume"]);
  assert.deepEqual(fragmentsFor({ network: true, runtime: "node", vcpus: 2, volumes: true }), ["base", "network", "node-runtime", "runtime-disk", "volume", "smp"]);
  assert.match(await readFragment("volume"), /^CONFIG_EXT4_FS=y/m);
  assert.match(await readFragment("runtime-disk"), /^CONFIG_EXT2_FS=y/m);
  for (const name of ["base", "network", "smp"] as const) {
    assert.doesNotMatch(await readFragment(name), /^CONFIG_(EXT[234]_FS|VFAT_FS|BTRFS_FS|XFS_FS)=y/m, `${name} must not bring a disk filesystem`);
  }
});

test("a network device lives only in the network fragment; base turns off what no app needs", async () => {
  const base = await readFragment("base");
  assert.doesNotMatch(base, /^CONFIG_(NETDEVICES|VIRTIO_NET|IP_PNP)=y/m);
  assert.match(base, /^CONFIG_VT=n/m);
  assert.match(base, /^CONFIG_PVH=y/m);
  assert.match(await readFragment("network"), /^CONFIG_VIRTIO_NET=y/m);
  assert.match(base, /^CONFIG_IPV6=n/m);
});

test("base holds the header-level options and a tickless idle, so kept build trees serve every set", async () => {
  const base = await readFragment("base");
  for (const option of ["SYSFS", "SHMEM", "EPOLL", "MEMBARRIER", "IO_URING", "RSEQ", "SYSVIPC", "BLOCK", "VIRTIO_BLK", "NET", "UNIX", "INET", "NO_HZ_IDLE", "HZ_100"]) {
    assert.match(base, new RegExp(`^CONFIG_${option}=y$`, "m"), `base must set ${option}`);
  }
  for (const name of ["network", "node-runtime", "runtime-disk", "volume", "smp", "balloon"] as const) {
    const fragment = await readFragment(name);
    for (const line of fragment.split("\n").filter((l) => l.startsWith("CONFIG_"))) {
      assert.ok(!base.split("\n").includes(line), `${name} repeats base's ${line}`);
    }
  }
});

test("SMP is the smp fragment's, not base's: a 1-vCPU kernel boots faster without it", async () => {
  assert.match(await readFragment("base"), /^CONFIG_SMP=n$/m);
  assert.match(await readFragment("smp"), /^CONFIG_SMP=y$/m);
});

test("fragment names are checked", () => {
  assert.deepEqual(parseFragmentNames("network"), ["base", "network"]);
  assert.throws(() => parseFragmentNames("base,gpu"), /unknown kernel fragment "gpu"/);
  assert.throws(() => parseFragmentNames("tickless"), /unknown kernel fragment "tickless"/);
});

test("enabled options counts y and m, not n or comments", () => {
  assert.deepEqual(enabledOptions("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_D=n\nCONFIG_E=\"x\"\n"), ["A", "C"]);
});
