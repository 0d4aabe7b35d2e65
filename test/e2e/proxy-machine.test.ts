import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { PithClient } from "../../src/client/index.ts";
import type { Machine } from "../../src/model/kinds.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import { TestCluster, waitFor } from "../support/cluster.ts";
import { appImage, proxyMachineImage } from "../support/images.ts";
import { get } from "../support/load.ts";
import { missingForMachines } from "../support/machines.ts";

const skip = missingForMachines();

async function readyMachine(client: PithClient, service: string): Promise<Machine | undefined> {
  const machines = (await client.list("Machine", { labels: { "pith.dev/service": service } })).items;
  return machines.find((m) => m.status.phase === "ready");
}

describe("the proxy as a Pith machine", { skip, timeout: 600_000 }, () => {
  test("routes by Host through the API's tunnel to a hello-ts machine; its only egress is the API", async (t) => {
    const { image: proxyImage, apiPort } = await proxyMachineImage();
    const hello = await appImage("examples/hello-ts");

    // What the image may do, from its record: serve 8080, reach the API, and nothing else.
    const { capabilities } = proxyImage.record;
    assert.deepEqual(capabilities.egress, [{ host: "127.0.0.1", port: apiPort }], "the API is its only egress");
    assert.deepEqual(capabilities.listen.map((l) => l.port), [8080]);

    const { cluster: c, client } = await TestCluster.start(t, { port: apiPort });
    const token = readFileSync(join(c.home, "token"), "utf8").trim();
    // The proxy machine holds a proxy-role token, never the admin one.
    const proxyToken = (await client.createToken({ role: "proxy", name: "edge" })).secret;
    await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "hello" }, spec: { image: hello.record.digest, replicas: 1, hosts: ["hello.test"] } });
    // The token reaches the machine as env at its start; the image carries none.
    await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "edge" }, spec: { image: proxyImage.record.digest, replicas: 1, env: { API_TOKEN: proxyToken } } });

    const helloMachine = await waitFor(() => readyMachine(client, "hello"), 240_000, "hello's machine is ready", () => c.log());
    // Ready only once its route table is synced from the API (it calls ready() then).
    const edge = await waitFor(() => readyMachine(client, "edge"), 240_000, "the proxy machine is ready", () => c.log());
    const edgeUrl = edge.status.addresses?.[0]?.url;
    assert.ok(edgeUrl, "the proxy machine's 8080 is forwarded");
    assert.equal(edge.status.addresses?.[0]?.guestPort, 8080);

    const tunnels = async (): Promise<number> => {
      const metrics = await fetch(`${c.url}/metrics`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.text());
      return Number(/pith_api_requests_total\{method="GET",route="\/api\/v1\/machines\/:name\/tunnel\/:port",status="101"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    };
    assert.equal(await tunnels(), 0, "no tunnel before the first request");

    // The proxy machine cannot dial hello's forwarded port (its network reaches only the API), so an
    // answer from hello-ts came through the API's tunnel; the API's count of tunnels says so too.
    const reply = await get(edgeUrl, "hello.test", undefined, 60_000);
    assert.equal(reply.status, 200, reply.body);
    const body = JSON.parse(reply.body) as { greeting: string; machine: string };
    assert.equal(body.greeting, "hello from a Pith machine");
    assert.equal(body.machine, helloMachine.metadata.name);
    assert.ok((await tunnels()) >= 1, "the request went through the API's tunnel");

    for (let i = 0; i < 5; i++) {
      const again = await get(edgeUrl, "hello.localhost", undefined, 60_000);
      assert.equal(again.status, 200, again.body);
    }
    const unrouted = await get(edgeUrl, "nothing.test", undefined, 60_000);
    assert.equal(unrouted.status, 404, "a host no service claims is the proxy's own 404");
    assert.match(unrouted.body, /no service serves host nothing\.test/);
    const itself = await get(edgeUrl, "edge.localhost", undefined, 60_000);
    assert.equal(itself.status, 404, "its own service is not routed: the request would come back to it");
  });
});
