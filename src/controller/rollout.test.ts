import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Machine, Secret, ServiceSpec } from "../model/kinds.ts";
import { TEMPLATE_HASH_LABEL } from "../model/machine-template.ts";
import { specAtRevision } from "../model/revision-history.ts";
import { API_VERSION } from "../model/resource.ts";
import { writeBack } from "./object-updates.ts";
import { SERVICE_LABEL } from "../model/labels.ts";
import { ControllerWorld } from "./test-support.ts";

const isServing = (m: Machine) => m.spec.desiredState === "running" && m.status.phase === "ready";

/**
 * Plays the agents until the service runs only machines of its current template, all ready; the
 * rollout's steps are the reconciler's, so the test sees what it would do with real agents.
 */
async function rollOut(world: ControllerWorld, service = "web"): Promise<Machine[]> {
  for (let step = 0; step < 40; step++) {
    await world.reconcileService(service);
    const hash = (await world.service(service)).status.templateHash;
    const machines = await world.machines(service);
    const desired = (await world.service(service)).status.desired ?? 0;
    if (machines.length === desired && machines.every((m) => m.metadata.labels[TEMPLATE_HASH_LABEL] === hash && isServing(m))) return machines;
    await world.finishStops();
    await world.placeAll();
    for (const m of await world.machines(service)) if (m.spec.desiredState === "running" && m.status.phase !== "ready") await world.report(m.metadata.name, "ready");
    world.clock.advance(1000);
  }
  throw new Error(`the rollout of ${service} did not finish in 40 steps`);
}

async function putSecret(world: ControllerWorld, name: string, keys: Record<string, string>): Promise<void> {
  // As the API stores it: hashes and sealed values (the controller reads only the hashes).
  const spec = { keys: Object.fromEntries(Object.entries(keys).map(([k, hash]) => [k, { hash }])), sealed: Object.fromEntries(Object.keys(keys).map((k) => [k, "v1.sealed"])) };
  const existing = await world.store.get<Secret>("Secret", name);
  if (existing) await writeBack(world.store, existing, { spec });
  else await world.store.create<Secret>({ apiVersion: API_VERSION, kind: "Secret", metadata: { name }, spec, status: {} });
}

describe("rollouts: any change to the machine template rolls the service", () => {
  test("an env change rolls every machine, under the update strategy, and is a new revision", async (t) => {
    const world = ControllerWorld.create(t);
    const digest = await world.image("a");
    const spec: ServiceSpec = { image: digest, replicas: 2, env: { GREETING: "hi" }, update: { strategy: "rolling", maxSurge: 1, maxUnavailable: 0 } };
    await world.applyService("web", spec);
    const first = await rollOut(world);
    const before = (await world.service("web")).status;
    assert.equal(before.revision, 1);

    await world.applyService("web", { ...spec, env: { GREETING: "hello" } });
    await world.reconcileService("web");
    // maxSurge 1, maxUnavailable 0: one new machine, both old ones still serving.
    const during = await world.machines("web");
    assert.equal(during.filter((m) => m.spec.desiredState === "running").length, 3);
    assert.equal(during.filter(isServing).length, 2);

    const after = await rollOut(world);
    assert.equal(after.length, 2);
    for (const m of after) {
      assert.deepEqual(m.spec.env, { GREETING: "hello" });
      assert.ok(!first.some((old) => old.metadata.name === m.metadata.name), "every machine was replaced");
    }
    const status = (await world.service("web")).status;
    assert.notEqual(status.templateHash, before.templateHash);
    assert.equal(status.updated, 2);
    assert.deepEqual(status.revisions?.map((r) => r.revision), [2, 1]);
    assert.deepEqual(status.revisions?.[1]?.env, { GREETING: "hi" });
  });

  test("restart (a new restartedAt) replaces every machine with the same settings", async (t) => {
    const world = ControllerWorld.create(t);
    const digest = await world.image("a");
    const spec: ServiceSpec = { image: digest, replicas: 2 };
    await world.applyService("web", spec);
    const first = await rollOut(world);
    await world.applyService("web", { ...spec, restartedAt: world.clock.iso() });
    const after = await rollOut(world);
    assert.equal(after.length, 2);
    for (const m of after) assert.ok(!first.some((old) => old.metadata.name === m.metadata.name));
    assert.deepEqual(after[0]!.spec.env, {});
  });

  test("undo returns to the previous template: the old env, renumbered as the newest revision", async (t) => {
    const world = ControllerWorld.create(t);
    const v1 = await world.image("a");
    const v2 = await world.image("b");
    await world.applyService("web", { image: v1, replicas: 2, env: { MODE: "old" } });
    await rollOut(world);
    const original = (await world.service("web")).status.templateHash;
    await world.applyService("web", { image: v2, replicas: 2, env: { MODE: "new" } });
    await rollOut(world);

    const service = await world.service("web");
    await world.applyService("web", specAtRevision(service.spec, service.status.revisions![1]!));
    const after = await rollOut(world);
    for (const m of after) {
      assert.equal(m.spec.image, v1);
      assert.deepEqual(m.spec.env, { MODE: "old" });
    }
    const status = (await world.service("web")).status;
    assert.equal(status.templateHash, original);
    assert.deepEqual(status.revisions?.map((r) => [r.revision, r.image]), [[3, v1], [2, v2]]);
  });

  test("a changed Secret rolls the services whose env uses it, and only those; machines hold the reference, not the value", async (t) => {
    const world = ControllerWorld.create(t);
    const digest = await world.image("a");
    await putSecret(world, "db", { password: "hmac-sha256:one" });
    await world.applyService("web", { image: digest, replicas: 1, env: { DB_PASSWORD: { secretRef: { name: "db", key: "password" } }, PLAIN: "x" } });
    await world.applyService("other", { image: digest, replicas: 1 });
    const [first] = await rollOut(world);
    const [untouched] = await rollOut(world, "other");
    assert.deepEqual(first!.spec.env, { PLAIN: "x" });
    assert.deepEqual(first!.spec.secretEnv, { DB_PASSWORD: { name: "db", key: "password" } });

    const { ServiceReconciler } = await import("./service-reconciler.ts");
    const reconciler = new ServiceReconciler(world.store, { record: async () => {} } as never);
    await putSecret(world, "db", { password: "hmac-sha256:two" });
    const secret = (await world.store.get<Secret>("Secret", "db"))!;
    assert.deepEqual(reconciler.keysFor({ type: "MODIFIED", object: secret } as never), ["web"], "the Secret's change queues the service that uses it");

    const [second] = await rollOut(world);
    assert.notEqual(second!.metadata.name, first!.metadata.name);
    assert.equal((await world.machines("other"))[0]!.metadata.name, untouched!.metadata.name);
  });

  test("a secretRef to a missing Secret or key: the service waits with a clear message, old machines keep serving", async (t) => {
    const world = ControllerWorld.create(t);
    const digest = await world.image("a");
    await world.applyService("web", { image: digest, replicas: 2 });
    await rollOut(world);
    await world.applyService("web", { image: digest, replicas: 2, env: { TOKEN: { secretRef: { name: "api", key: "token" } } } });
    assert.deepEqual(await world.reconcileService("web"), { requeueAfterMs: 10_000 });
    let status = (await world.service("web")).status;
    assert.equal(status.message, "waiting for secrets: env TOKEN: Secret api not found");
    assert.equal((await world.events("SecretMissing")).length, 1);
    assert.equal((await world.machines("web")).filter(isServing).length, 2, "nothing is retired while the template cannot be made");

    await putSecret(world, "api", { other: "hmac-sha256:x" });
    await world.reconcileService("web");
    status = (await world.service("web")).status;
    assert.equal(status.message, "waiting for secrets: env TOKEN: Secret api has no key token");

    await putSecret(world, "api", { token: "hmac-sha256:y" });
    const after = await rollOut(world);
    assert.ok(after.every((m) => m.spec.secretEnv?.TOKEN?.key === "token"));
    assert.equal((await world.service("web")).status.message, undefined);
  });

  test("machines made before templates were hashed count as current while their image is (an upgrade rolls nothing)", async (t) => {
    const world = ControllerWorld.create(t);
    const digest = await world.image("a");
    await world.store.create<Machine>({
      apiVersion: API_VERSION,
      kind: "Machine",
      metadata: { name: "web-legacy", labels: { [SERVICE_LABEL]: "web" } },
      spec: { service: "web", image: digest, memoryMiB: 64, vcpus: 1, env: {}, desiredState: "running", node: "n1" },
      status: { phase: "ready" },
    });
    await world.applyService("web", { image: digest, replicas: 1 });
    await world.reconcileService("web");
    assert.deepEqual((await world.machines("web")).map((m) => [m.metadata.name, m.spec.desiredState]), [["web-legacy", "running"]]);
  });
});
