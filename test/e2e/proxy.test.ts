import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { PithClient } from "../../src/client/index.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import type { ServiceSpec } from "../../src/model/kinds.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { TestCluster, waitFor } from "../support/cluster.ts";
import { appImage } from "../support/images.ts";
import { get, runLoad, startLoad } from "../support/load.ts";
import { missingForMachines } from "../support/machines.ts";

const skip = missingForMachines();


const service = (client: PithClient, name: string, spec: ServiceSpec) =>
  client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name }, spec });

async function readyCount(client: PithClient, name: string): Promise<number> {
  return (await client.list("Machine", { labels: { "pith.dev/service": name } })).items.filter((m) => m.status.phase === "ready").length;
}

describe("the proxy in front of real machines", { skip, timeout: 900_000, concurrency: false }, () => {
  test("20 concurrent requests to a service at zero all get 200 from one booted machine, never before it is ready", async (t) => {
    const image = await appImage("test/fixtures/slow-ready");
    const { cluster: c, client } = await TestCluster.start(t, { proxy: true });
    await service(client, "lazy", { image: image.record.digest, min: 0, max: 3, hosts: ["lazy.test"] });
    await waitFor(async () => ((await client.get("Service", "lazy"))?.status.desired === 0 ? true : undefined), 30_000, "the service is reconciled at zero", () => c.log());
    assert.equal((await client.list("Machine")).items.length, 0, "a min-0 service starts with no machine");

    const answers = await Promise.all(Array.from({ length: 20 }, () => get(c.proxyUrl, "lazy.test")));
    for (const a of answers) {
      assert.equal(a.status, 200, a.body);
      assert.match(a.body, /^ready /, "no request reached the machine before it said it was ready");
    }
    const machines = new Set(answers.map((a) => a.body.trim().split(" ")[1]));
    assert.equal(machines.size, 1, "all were served by the one machine that booted");
    const events = await client.events("Service", "lazy");
    assert.equal(events.filter((e) => e.spec.reason === "MachineCreated").length, 1, `only one machine was created:\n${events.map((e) => `${e.spec.at} ${e.spec.reason} ${e.spec.message}`).join("\n")}`);
    assert.ok(events.some((e) => e.spec.reason === "ScaledUp" && /from 0 to 1/.test(e.spec.message)));
  });

  test("a rolling update under continuous load fails no request", async (t) => {
    execFileSync("make", ["-s", "-C", join(pithRoot(), "examples/static-c")]);
    const before = await appImage("examples/static-c");
    const variantDir = mkdtempSync(join(tmpdir(), "pith-static-v2-"));
    t.after(() => rmSync(variantDir, { recursive: true, force: true }));
    cpSync(join(pithRoot(), "examples/static-c"), variantDir, { recursive: true });
    writeFileSync(join(variantDir, "pith.yaml"), readFileSync(join(variantDir, "pith.yaml"), "utf8") + "env:\n  GREETING: version two\n");
    const after = await buildImage(await loadAppManifest(variantDir));

    const { cluster: c, client } = await TestCluster.start(t, { proxy: true });
    await service(client, "web", { image: before.record.digest, replicas: 2, hosts: ["web.test"] });
    await waitFor(async () => ((await readyCount(client, "web")) === 2 ? true : undefined), 120_000, "2 ready machines", () => c.log());

    let rolledAt = 0;
    const load = startLoad({ url: c.proxyUrl, host: "web.test", concurrency: 4, durationMs: 60_000 });
    await waitFor(async () => ((load.live.bodies.get("hello from static-c") ?? 0) >= 20 ? true : undefined), 30_000, "the old version serves the load", () => c.log());
    const current = (await client.get("Service", "web"))!;
    await client.update({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "web", resourceVersion: current.metadata.resourceVersion }, spec: { ...current.spec, image: after.record.digest } });
    await waitFor(
      async () => {
        const machines = (await client.list("Machine", { labels: { "pith.dev/service": "web" } })).items;
        const done = machines.length === 2 && machines.every((m) => m.spec.image === after.record.digest && m.status.phase === "ready");
        if (done && !rolledAt) rolledAt = Date.now();
        return done ? true : undefined;
      },
      50_000,
      "the rollout finishes",
      () => c.log(),
    );
    const result = await load.finished;
    assert.deepEqual(result.failures, [], "no non-2xx response and no connection error");
    assert.ok((result.bodies.get("hello from static-c") ?? 0) > 0, "the old version served before the rollout");
    assert.ok((result.bodies.get("version two") ?? 0) > 0, "the new version serves after it");
    assert.ok(result.ok > 100, `load was continuous (${result.ok} requests)`);
  });

  test("kill -9 of a machine's QEMU under GET load causes no 5xx", async (t) => {
    const image = await appImage("examples/static-c");
    const { cluster: c, client } = await TestCluster.start(t, { proxy: true });
    await service(client, "web", { image: image.record.digest, replicas: 2, hosts: ["web.test"] });
    await waitFor(async () => ((await readyCount(client, "web")) === 2 ? true : undefined), 120_000, "2 ready machines", () => c.log());
    const load = startLoad({ url: c.proxyUrl, host: "web.test", concurrency: 4, durationMs: 15_000 });
    await waitFor(async () => (load.live.ok >= 20 ? true : undefined), 10_000, "the load is served", () => c.log());
    const victim = c.qemuPids("node-a")[0]!;
    process.kill(victim, "SIGKILL");
    const result = await load.finished;
    assert.deepEqual(result.failures, [], "every GET was answered 2xx");
    assert.ok(result.ok > 50);
    await waitFor(async () => ((await readyCount(client, "web")) === 2 ? true : undefined), 120_000, "the killed machine is replaced", () => c.log());
  });

  test("the autoscaler scales up under load and back down after it", async (t) => {
    const image = await appImage("test/fixtures/slow-ready");
    const { cluster: c, client } = await TestCluster.start(t, { proxy: true });
    await service(client, "busy", {
      image: image.record.digest,
      min: 1,
      max: 3,
      hosts: ["busy.test"],
      autoscale: { targetInFlight: 2, cooldownSeconds: 5, idleSeconds: 5 },
    });
    await waitFor(async () => ((await readyCount(client, "busy")) === 1 ? true : undefined), 120_000, "the min machine is ready", () => c.log());
    // Six slow requests in flight at all times: 3 machines at 2 per machine.
    let scaledUp = false;
    const load = runLoad({ url: `${c.proxyUrl}/?ms=300`, host: "busy.test", concurrency: 6, durationMs: 90_000, until: () => scaledUp });
    await waitFor(
      async () => {
        scaledUp = (await readyCount(client, "busy")) === 3;
        return scaledUp ? true : undefined;
      },
      90_000,
      "three ready machines under load",
      () => c.log(),
    );
    const result = await load;
    assert.deepEqual(result.failures, []);
    await waitFor(async () => ((await client.list("Machine", { labels: { "pith.dev/service": "busy" } })).items.length === 1 ? true : undefined), 60_000, "back to one machine", () => c.log());
    const reasons = (await client.events("Service", "busy")).map((e) => e.spec.reason);
    assert.ok(reasons.includes("ScaledUp") && reasons.includes("ScaledDown"), reasons.join(", "));
    const metrics = await fetch(`${c.url}/metrics`, { headers: { authorization: `Bearer ${readFileSync(join(c.home, "token"), "utf8").trim()}` } }).then((r) => r.text());
    assert.match(metrics, /pith_autoscaler_desired_machines\{service="busy"\} 1/);
  });
});
