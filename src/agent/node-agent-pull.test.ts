import assert from "node:assert/strict";
import { test } from "node:test";
import { API_VERSION } from "../model/resource.ts";
import type { PullResult } from "../registry/pull.ts";
import { systemError } from "../shared/errors.ts";
import { waitFor } from "../../test/support/cluster.ts";
import type { ImagePuller } from "./image-pull.ts";
import { AgentWorld, NODE } from "./test-support.ts";

const DIGEST = "sha256:" + "f".repeat(64);
const SOURCE = `127.0.0.1:5000/app@sha256:${"a".repeat(64)}`;

async function placeFromRegistry(world: AgentWorld, name: string, imageSource?: string): Promise<void> {
  await world.client.create({
    apiVersion: API_VERSION,
    kind: "Machine",
    metadata: { name },
    spec: { image: DIGEST, ...(imageSource ? { imageSource } : {}), node: NODE, memoryMiB: 16, vcpus: 1, desiredState: "running" },
    status: { phase: "pending" },
  });
}

const reasons = async (world: AgentWorld, name: string, want: string[]) =>
  waitFor(async () => {
    const events = await world.client.events("Machine", name);
    const got = events.map((e) => e.spec.reason);
    return want.every((r) => got.includes(r)) ? events : undefined;
  }, 10_000, `machine ${name} has events ${want.join(", ")}`);

test("a machine whose image must be pulled shows the pull's progress and time, then starts", async (t) => {
  const world = await AgentWorld.start(t);
  const calls: [string, string][] = [];
  const puller: ImagePuller = async (source, digest, onProgress) => {
    calls.push([source, digest]);
    onProgress(0, 3000);
    onProgress(1500, 3000);
    onProgress(3000, 3000);
    return { downloaded: true, bytes: 3000, ms: 1234, pinned: source, manifestDigest: source.split("@")[1]! } as PullResult;
  };
  await world.startAgent({ imagePuller: puller });
  await placeFromRegistry(world, "pulled", SOURCE);
  const ready = await world.reaches("pulled", "ready");
  assert.deepEqual(calls, [[SOURCE, DIGEST]]);
  assert.deepEqual(ready.status.pull, { source: SOURCE, bytes: 3000, totalBytes: 3000, ms: 1234 });
  const events = await reasons(world, "pulled", ["Pulling", "Pulled"]);
  assert.match(events.find((e) => e.spec.reason === "Pulled")!.spec.message, /in 1\.2 s \(0\.0 MiB, every blob verified\)/);
  // Progress was on the status while pulling: a write with bytes short of the total.
  assert.ok(world.machines.events.some((e) => e.object.status.pull && e.object.status.pull.ms === undefined), "progress written before the end");
});

test("a refused pull fails the machine with the reason, and nothing is started", async (t) => {
  const world = await AgentWorld.start(t);
  await world.startAgent({
    imagePuller: async () => {
      throw systemError("REGISTRY_REFUSED", "refused what 127.0.0.1:5000 sent: the rootfs blob hashes to sha256:1, not sha256:2");
    },
  });
  await placeFromRegistry(world, "refused", SOURCE);
  const failed = await world.reaches("refused", "failed");
  assert.match(failed.status.reason ?? "", /^cannot start: refused what 127\.0\.0\.1:5000 sent: the rootfs blob hashes/);
  assert.deepEqual(world.hypervisor.starts, []);
  await reasons(world, "refused", ["PullFailed"]);
});

test("a machine without an image source, or whose image is stored, records no pull", async (t) => {
  const world = await AgentWorld.start(t);
  let asked = 0;
  await world.startAgent({ imagePuller: async () => (asked++, undefined) });
  await placeFromRegistry(world, "local");
  await placeFromRegistry(world, "present", SOURCE);
  for (const name of ["local", "present"]) assert.equal((await world.reaches(name, "ready")).status.pull, undefined);
  assert.equal(asked, 1, "asked only for the machine with a source, which found it stored");
});
