import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Image } from "../model/kinds.ts";
import { pushImage } from "../registry/push.ts";
import { parseRegistryReference } from "../registry/registry-reference.ts";
import { makeTestImage } from "../registry/test-image.ts";
import { useTempPithHome } from "../shared/temp-pith-home.ts";
import { registryMissing, startRegistry, type TestRegistry } from "../../test/support/registry.ts";
import { ControllerWorld } from "./test-support.ts";

/** The service controller with a real registry (docker-registry on loopback) and a real store. */
describe("services naming an image in a registry", { skip: registryMissing() }, () => {
  useTempPithHome("pith-resolver-");
  let registry: TestRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(() => registry?.stop());

  it("resolves a tag once: machines get the image digest and where to pull it, and a later push to the tag changes nothing", async (t) => {
    const first = await makeTestImage("svc-one");
    const { pinned } = await pushImage(first, parseRegistryReference(`${registry.address}/pith/svc:v1`));
    const world = ControllerWorld.create(t);
    const reference = `${registry.address}/pith/svc:v1`;
    await world.applyService("web", { image: reference, replicas: 2 });
    await world.reconcileService("web");
    const machines = await world.machines("web");
    assert.equal(machines.length, 2);
    for (const m of machines) {
      assert.equal(m.spec.image, first.record.digest);
      assert.equal(m.spec.imageSource, pinned);
    }
    const service = await world.service("web");
    assert.deepEqual(service.status.imageSource, { reference, pinned });
    const images = (await world.store.list<Image>("Image")).items;
    assert.deepEqual(images.map((i) => [i.spec.digest, i.spec.source]), [[first.record.digest, pinned]]);

    // Another service naming the image by its Pith digest: its machines know where to pull it too.
    await world.applyService("by-digest", { image: first.record.digest, replicas: 1 });
    await world.reconcileService("by-digest");
    assert.deepEqual((await world.machines("by-digest")).map((m) => m.spec.imageSource), [pinned]);

    // Someone pushes other bytes to the same tag: the service keeps the bytes it resolved.
    const second = await makeTestImage("svc-two");
    await pushImage(second, parseRegistryReference(reference));
    await world.reconcileService("web");
    assert.deepEqual((await world.machines("web")).map((m) => m.spec.image), [first.record.digest, first.record.digest]);
    // With the registry gone, nothing is asked of it either.
    await registry.stop();
    await world.reconcileService("web");
    assert.equal((await world.service("web")).status.imageSource?.pinned, pinned);
    registry = await startRegistry();
  });

  it("a tag the registry lacks is said on the service, and no machine is made", async (t) => {
    const world = ControllerWorld.create(t);
    await world.applyService("ghost", { image: `${registry.address}/pith/ghost:v9`, replicas: 1 });
    const outcome = await world.reconcileService("ghost");
    assert.deepEqual(outcome, { requeueAfterMs: 10_000 });
    assert.match((await world.service("ghost")).status.message ?? "", /has no manifest v9/);
    assert.equal((await world.machines("ghost")).length, 0);
  });
});
