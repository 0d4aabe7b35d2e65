import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { API_VERSION } from "../../src/model/resource.ts";
import type { Machine, PithEvent, Service } from "../../src/model/kinds.ts";
import { pushImage } from "../../src/registry/push.ts";
import { parseRegistryReference } from "../../src/registry/registry-reference.ts";
import { TestCluster, waitFor } from "../support/cluster.ts";
import { appImage } from "../support/images.ts";
import { httpGet, missingForMachines } from "../support/machines.ts";
import { registryMissing, startRegistry } from "../support/registry.ts";
import { GiveUp } from "../support/until.ts";

const skip = missingForMachines() || registryMissing();

describe("a service whose image is in a registry", { skip, timeout: 600_000 }, () => {
  test("runs on an agent whose store lacks the image: the tag resolved once, pulled by digest, verified, ready, the pull and its time on the machine", async (t) => {
    const image = await appImage("examples/hello-ts");
    const registry = await startRegistry();
    t.after(() => registry.stop());
    const pushed = await pushImage(image, parseRegistryReference(`${registry.address}/hello-ts:e2e`));

    const cluster = await TestCluster.create(t);
    // This node shares no image store with the host that built the image: an empty one of its own.
    const images = join(cluster.home, "images");
    assert.ok(lstatSync(images).isSymbolicLink());
    rmSync(images);
    mkdirSync(images, { mode: 0o700 });
    await cluster.startServer();
    await cluster.startAgent("node-a");
    const client = cluster.client();

    // By tag: the control plane resolves it to the manifest digest, and the machine pulls by that.
    const tagged = `${registry.address}/hello-ts:e2e`;
    await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "hello" }, spec: { image: tagged, replicas: 1 } });
    const machine = await waitFor(
      async () => {
        const { items } = await client.list("Machine", { labels: { "pith.dev/service": "hello" } });
        const m = items[0] as Machine | undefined;
        if (m?.status.phase === "failed") throw new GiveUp(`machine failed: ${m.status.reason}`);
        return m?.status.phase === "ready" ? m : undefined;
      },
      300_000,
      "the machine is ready",
      () => cluster.log(),
    );
    assert.equal(machine.spec.image, image.record.digest, "the machine runs the image's own digest");
    assert.equal(machine.spec.imageSource, pushed.pinned, "and knows where to pull it");
    const pull = machine.status.pull;
    assert.ok(pull, "the pull is on the machine's status");
    assert.equal(pull.source, pushed.pinned);
    assert.ok(pull.bytes > 1024 * 1024 && pull.bytes === pull.totalBytes, `all ${pull.totalBytes} bytes received`);
    assert.ok(pull.ms !== undefined && pull.ms > 0, "and how long it took");
    assert.ok(existsSync(join(images, image.record.digest.slice(7), "image.json")), "the image is cached in the node's store");
    assert.equal((await httpGet(machine.status.addresses![0]!.url)).status, 200);

    const events = (await client.list("Event")).items.filter((e) => (e as PithEvent).spec.involved.name === machine.metadata.name) as PithEvent[];
    const reasons = events.map((e) => e.spec.reason);
    assert.ok(reasons.includes("Pulling"), `a Pulling event (${reasons.join(", ")})`);
    const pulled = events.find((e) => e.spec.reason === "Pulled");
    assert.match(pulled?.spec.message ?? "", /pulled image sha256:[0-9a-f]{12} from .* in \d+\.\d s \([\d.]+ MiB, every blob verified\)/);

    const service = (await client.get("Service", "hello")) as Service;
    assert.deepEqual(service.status.imageSource, { reference: tagged, pinned: pushed.pinned });
  });
});
