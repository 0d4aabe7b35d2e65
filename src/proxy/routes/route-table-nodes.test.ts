import assert from "node:assert/strict";
import { test } from "node:test";
import { startTestServer } from "../../api/test-support.ts";
import { PithClient } from "../../client/index.ts";
import { RouteTable } from "./route-table.ts";
import { until } from "../test-support.ts";

const node = (name: string, address: string | undefined, ready: boolean) => ({
  apiVersion: "pith.dev/v1" as const,
  kind: "Node" as const,
  metadata: { name },
  spec: { capacity: { memoryMiB: 1024, vcpus: 2 }, accelerator: "tcg" as const, ...(address ? { address } : {}) },
  status: { ready },
});

test("machines on other hosts are routed at their node's registered address, and not while the node is NotReady", async () => {
  const server = await startTestServer();
  const client = new PithClient({ server: server.url, token: server.token });
  const stop = new AbortController();
  const errors: string[] = [];
  const table = new RouteTable(client, { onError: (e) => errors.push((e as Error).message) });
  const backends = () => table.lookup("web.localhost", "/")?.backends.map((b) => `${b.machine} ${b.url.host}`).sort() ?? [];
  try {
    await client.create(node("a", "10.213.0.11", true));
    await client.create(node("b", "10.213.0.12", true));
    await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "web" }, spec: { image: "x", replicas: 3 } });
    // Each machine's status names an address; only its own node's (or loopback) is dialled.
    for (const [name, onNode, host] of [["on-a", "a", "10.213.0.11"], ["on-b", "b", "10.213.0.12"], ["b-claims-a", "b", "10.213.0.11"], ["b-claims-loopback", "b", "127.0.0.1"]] as const) {
      await client.create({ apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name }, spec: { service: "web", image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running", node: onNode } });
      await client.updateStatus("Machine", name, { phase: "ready", addresses: [{ guestPort: 8080, hostPort: 20001, url: `http://${host}:20001/` }] });
    }
    await table.start(stop.signal);
    assert.deepEqual(backends(), ["on-a 10.213.0.11:20001", "on-b 10.213.0.12:20001"]);
    assert.ok(errors.some((e) => /machine b-claims-a is not routed: .*10\.213\.0\.11 is not the address its node registered \(10\.213\.0\.12\)/.test(e)), JSON.stringify(errors));
    assert.ok(errors.some((e) => /machine b-claims-loopback is not routed: .*127\.0\.0\.1 is not the address its node registered/.test(e)), "loopback would be the proxy's own host");
    assert.equal(table.lookup("web.localhost", "/")?.backends.find((b) => b.machine === "on-a")?.nodeAddress, "10.213.0.11", "HAProxy re-checks against the same address");

    // b is lost: its machine leaves the route at once, before any controller replaces it; and is back with b.
    const b = (await client.get("Node", "b"))!;
    await client.updateStatus("Node", "b", { ...b.status, ready: false });
    await until(() => backends().length === 1, 2000, "on-b to leave the route");
    assert.deepEqual(backends(), ["on-a 10.213.0.11:20001"]);
    await client.updateStatus("Node", "b", { ...b.status, ready: true });
    await until(() => backends().length === 2, 2000, "on-b to be routed again");

    // A node that moves to another address takes its machines' routes with it: the old URL is refused.
    const a = (await client.get("Node", "a"))!;
    await client.update({ ...a, metadata: { name: "a" }, spec: { ...a.spec, address: "10.213.0.21" } });
    await until(() => backends().length === 1, 2000, "on-a to be refused at its old address");
  } finally {
    stop.abort();
    await table.done.catch(() => undefined);
    await server.close();
  }
});
