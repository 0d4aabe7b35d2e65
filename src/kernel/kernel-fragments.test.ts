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

test("only an app that declares volumes gets the volume fragment: a block driver and ext4", async () => {
  assert.deepEqual(fragmentsFor({ network: false, runtime: "native", vcpus: 1, volumes: true }), ["base", "volume"]);
  assert.deepEqual(fragmentsFor({ network: true, runtime: "node", vcpus: 2, volumes: true }), ["base", "network", "node-runtime", "runtime-disk", "volume", "smp"]);
  const volume = await readFragment("volume");
  assert.match(volume, /^CONFIG_VIRTIO_BLK=y/m);
  assert.match(volume, /^CONFIG_EXT4_FS=y/m);
  for (const name of ["base", "network", "smp"] as const) {
    assert.doesNotMatch(await readFragment(name), /^CONFIG_(BLOCK|VIRTIO_BLK|EXT[234]_FS)=y/m, `${name} must not bring a block driver`);
  }
});

test("networking lives only in the network fragment; base turns off what no app needs", async () => {
  const base = await readFragment("base");
  assert.doesNotMatch(base, /^CONFIG_(NET|INET|VIRTIO_NET)=y/m);
  assert.match(base, /^CONFIG_VT=n/m);
  assert.match(base, /^CONFIG_PVH=y/m);
  assert.match(await readFragment("network"), /^CONFIG_VIRTIO_NET=y/m);
  assert.match(await readFragment("network"), /^CONFIG_IPV6=n/m);
});

test("fragment names are checked", () => {
  assert.deepEqual(parseFragmentNames("network"), ["base", "network"]);
  assert.throws(() => parseFragmentNames("base,gpu"), /unknown kernel fragment "gpu"/);
});

test("enabled options counts y and m, not n or comments", () => {
  assert.deepEqual(enabledOptions("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_D=n\nCONFIG_E=\"x\"\n"), ["A", "C"]);
});
