import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startTestServer, type TestServer } from "./test-support.ts";

const node = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: "pith.dev/v1",
  kind: "Node",
  metadata: { name },
  spec: { capacity: { memoryMiB: 1024, vcpus: 2 }, accelerator: "tcg", ...spec },
  status: { ready: true },
});

const machine = (name: string, nodeName: string) => ({
  apiVersion: "pith.dev/v1",
  kind: "Machine",
  metadata: { name },
  spec: { image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running", node: nodeName },
});

const addresses = (url: string) => ({ status: { phase: "ready", addresses: [{ guestPort: 8080, hostPort: 20001, url }] } });

let server: TestServer;
const tokens: Record<string, string> = {};
const as = (who: string, method: string, path: string, body?: unknown) => server.call(method, path, body, { authorization: `Bearer ${tokens[who]}` });
const errorOf = async (response: Response) => ((await response.json()) as { error?: { message: string } }).error?.message ?? "";

before(async () => {
  server = await startTestServer();
  for (const [name, role, nodeName] of [["a", "node", "a"], ["b", "node", "b"], ["proxy", "proxy", undefined]] as const) {
    const response = await server.call("POST", "/api/v1/tokens", { role, ...(nodeName ? { node: nodeName } : {}) });
    tokens[name] = ((await response.json()) as { secret: string }).secret;
  }
  assert.equal((await as("a", "POST", "/api/v1/nodes", node("a", { address: "10.213.0.11" }))).status, 201);
  assert.equal((await server.call("POST", "/api/v1/machines", machine("m-a", "a"))).status, 201);
});

after(() => server.close());

test("a node's address must be a literal, canonical IPv4 address a host can have", async () => {
  for (const address of ["10.213.0", "010.213.0.1", "10.213.0.256", "0.0.0.0", "224.0.0.1", "169.254.1.1", "example.com", "::1"]) {
    const response = await server.call("PUT", "/api/v1/nodes/a", node("a", { address }));
    assert.equal(response.status, 400, address);
    assert.match(await errorOf(response), /address/, address);
  }
});

test("a node token may not take another node's address, nor cordon, drain or uncordon its own node", async () => {
  const taken = await as("b", "POST", "/api/v1/nodes", node("b", { address: "10.213.0.11" }));
  assert.equal(taken.status, 403);
  assert.match(await errorOf(taken), /already registered by node a/);
  assert.equal((await as("b", "POST", "/api/v1/nodes", node("b", { address: "10.213.0.12" }))).status, 201);

  assert.equal((await as("a", "PUT", "/api/v1/nodes/a", node("a", { address: "10.213.0.11", unschedulable: true }))).status, 403);
  // An admin cordons it; its agent re-registering must keep that, and cannot undo it.
  assert.equal((await server.call("PUT", "/api/v1/nodes/a", node("a", { address: "10.213.0.11", unschedulable: true, drain: true }))).status, 200);
  const undo = await as("a", "PUT", "/api/v1/nodes/a", node("a", { address: "10.213.0.11" }));
  assert.equal(undo.status, 403);
  assert.match(await errorOf(undo), /admins only/);
  assert.equal((await as("a", "PUT", "/api/v1/nodes/a", node("a", { address: "10.213.0.11", unschedulable: true, drain: true }))).status, 200);
  assert.equal((await server.call("PUT", "/api/v1/nodes/a", node("a", { address: "10.213.0.11" }))).status, 200, "the admin uncordons");
});

test("a node token publishes machine addresses only at its node's registered address (loopback only for a node without one)", async () => {
  assert.equal((await as("a", "PUT", "/api/v1/machines/m-a/status", addresses("http://10.213.0.11:20001/"))).status, 200);
  for (const url of ["http://127.0.0.1:20001/", "http://10.213.0.12:20001/", "http://192.0.2.7:80/", "http://user:pw@10.213.0.11:20001/", "https://10.213.0.11:20001/", "not a url"]) {
    const response = await as("a", "PUT", "/api/v1/machines/m-a/status", addresses(url));
    assert.equal(response.status, 403, url);
    assert.match(await errorOf(response), /registered address \(10\.213\.0\.11\)/, url);
  }
  const machine = (await (await server.call("GET", "/api/v1/machines/m-a")).json()) as { status: { addresses: { url: string }[] } };
  assert.equal(machine.status.addresses[0]?.url, "http://10.213.0.11:20001/", "a refused write changes nothing");
});

test("a proxy token reads nodes (their addresses) but writes none", async () => {
  assert.equal((await as("proxy", "GET", "/api/v1/nodes")).status, 200);
  assert.equal((await as("proxy", "GET", "/api/v1/nodes/a")).status, 200);
  assert.equal((await as("proxy", "PUT", "/api/v1/nodes/a", node("a"))).status, 403);
});
