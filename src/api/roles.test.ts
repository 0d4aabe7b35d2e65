import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Role } from "../model/token.ts";
import { service, startTestServer, StreamReader, type TestServer } from "./test-support.ts";

type Json = { error?: { code: string; message: string; hint?: string } } & Record<string, unknown>;

const machine = (name: string, node: string | undefined) => ({
  apiVersion: "pith.dev/v1",
  kind: "Machine",
  metadata: { name },
  spec: { service: "web", image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running", ...(node ? { node } : {}) },
});

const nodeObject = (name: string) => ({
  apiVersion: "pith.dev/v1",
  kind: "Node",
  metadata: { name },
  spec: { capacity: { memoryMiB: 1024, vcpus: 2 }, accelerator: "tcg" },
});

const eventAbout = (name: string, kind: string, involved: string) => ({
  apiVersion: "pith.dev/v1",
  kind: "Event",
  metadata: { name },
  spec: { involved: { kind, name: involved }, type: "Normal", reason: "Test", message: "m", at: "2030-01-01T00:00:00.000Z" },
});

describe("roles", () => {
  let server: TestServer;
  const loads: string[] = [];
  const tokens: Partial<Record<string, string>> = {};

  /** A request with another token than the admin's. */
  const as = (token: string, method: string, path: string, body?: unknown) => server.call(method, path, body, { authorization: `Bearer ${token}` });

  async function mint(role: Role, node?: string, name?: string): Promise<string> {
    const response = await server.call("POST", "/api/v1/tokens", { role, ...(node ? { node } : {}), ...(name ? { name } : {}) });
    assert.equal(response.status, 201, await response.clone().text());
    const body = (await response.json()) as { secret: string; token: { role: string; node?: string } };
    assert.match(body.secret, /^pith_[0-9a-f]{16}_[0-9a-f]{64}$/);
    assert.equal(body.token.role, role);
    return body.secret;
  }

  /** Asserts a 403 whose JSON names the role and says what it may do. */
  async function refused(response: Response, role: RegExp, what: RegExp): Promise<void> {
    const body = (await response.json()) as Json;
    assert.equal(response.status, 403, JSON.stringify(body));
    assert.equal(body.error?.code, "Forbidden");
    assert.match(body.error?.message ?? "", role);
    assert.match(body.error?.message ?? "", what);
    assert.match(body.error?.message ?? "", /may /);
    assert.ok(body.error?.hint, "a hint says how to fix it");
  }

  before(async () => {
    server = await startTestServer({ server: { onLoadReport: (name) => loads.push(name), heartbeatMs: 200 } });
    assert.equal((await server.call("POST", "/api/v1/services", service("web"))).status, 201);
    for (const [name, node] of [["m1", "n1"], ["m2", "n2"], ["m3", undefined]] as const) {
      assert.equal((await server.call("POST", "/api/v1/machines", machine(name, node))).status, 201);
    }
    tokens.reader = await mint("read-only", undefined, "dashboard");
    tokens.n1 = await mint("node", "n1");
    tokens.proxy = await mint("proxy", undefined, "edge");
  });

  after(() => server.close());

  test("read-only reads and watches everything, writes nothing, and gets no console, tunnel or tokens", async () => {
    const token = tokens.reader!;
    for (const path of ["/api/v1/services", "/api/v1/services/web", "/api/v1/machines", "/api/v1/nodes", "/api/v1/events", "/metrics", "/openapi.json"]) {
      assert.equal((await as(token, "GET", path)).status, 200, path);
    }
    const watch = await as(token, "GET", "/api/v1/watch");
    assert.equal(watch.status, 200);
    await watch.body?.cancel();
    await refused(await as(token, "POST", "/api/v1/services", service("other")), /a read-only token \("dashboard"\) may not POST \/api\/v1\/services/, /read and watch objects/);
    await refused(await as(token, "PUT", "/api/v1/services/web", service("web", { image: "hello", replicas: 3 })), /read-only/, /PUT/);
    await refused(await as(token, "DELETE", "/api/v1/services/web"), /read-only/, /DELETE/);
    await refused(await as(token, "POST", "/api/v1/services/web/scale", { replicas: 0 }), /read-only/, /scale/);
    await refused(await as(token, "GET", "/api/v1/machines/m1/console"), /read-only/, /console/);
    await refused(await as(token, "GET", "/api/v1/machines/m1/tunnel/8080"), /read-only/, /tunnel/);
    await refused(await as(token, "GET", "/api/v1/tokens"), /read-only/, /tokens/);
    assert.equal(((await (await server.call("GET", "/api/v1/services/web")).json()) as { spec: { replicas: number } }).spec.replicas, 1, "nothing changed");
  });

  test("read-only may use the SSE query token like the GUI does", async () => {
    const response = await fetch(`${server.url}/api/v1/services?watch=true&token=${tokens.reader}`, { headers: { accept: "text/event-stream" } });
    assert.equal(response.status, 200);
    await response.body?.cancel();
  });

  test("a node token writes the status of machines on its node only, never spec, never services", async () => {
    const token = tokens.n1!;
    assert.equal((await as(token, "GET", "/api/v1/machines")).status, 200);
    const own = await as(token, "PUT", "/api/v1/machines/m1/status", { status: { phase: "booting", node: "n1" } });
    assert.equal(own.status, 200);
    await refused(await as(token, "PUT", "/api/v1/machines/m2/status", { status: { phase: "ready", addresses: [{ guestPort: 8080, hostPort: 7070, url: "http://127.0.0.1:7070/" }] } }), /node token \(for node n1/, /Machine m2 is placed on node n2, not on n1/);
    await refused(await as(token, "PUT", "/api/v1/machines/m3/status", { status: { phase: "ready" } }), /node n1/, /placed on no node yet/);
    const stored = (await (await server.call("GET", "/api/v1/machines/m2")).json()) as { status: { phase?: string } };
    assert.notEqual(stored.status.phase, "ready", "the refused write did not land");
    // Spec is never a node's to write, not even of its own machines.
    await refused(await as(token, "PUT", "/api/v1/machines/m1", { ...machine("m1", "n1"), spec: { ...machine("m1", "n1").spec, memoryMiB: 4096 } }), /node/, /may not PUT \/api\/v1\/machines\/:name\. /);
    await refused(await as(token, "POST", "/api/v1/machines", machine("m9", "n1")), /node/, /POST \/api\/v1\/machines/);
    await refused(await as(token, "POST", "/api/v1/services", service("evil")), /node/, /POST \/api\/v1\/services/);
    await refused(await as(token, "DELETE", "/api/v1/services/web"), /node/, /DELETE/);
    await refused(await as(token, "DELETE", "/api/v1/machines/m2"), /node/, /placed on node n2/);
    await refused(await as(token, "GET", "/api/v1/machines/m1/console"), /node/, /console/);
    await refused(await as(token, "GET", "/api/v1/tokens"), /node/, /tokens/);
  });

  test("a node token registers and updates its own Node only, and records events about its own machines", async () => {
    const token = tokens.n1!;
    assert.equal((await as(token, "POST", "/api/v1/nodes", nodeObject("n1"))).status, 201);
    await refused(await as(token, "POST", "/api/v1/nodes", nodeObject("n2")), /node n1/, /only its own Node, n1, not n2/);
    assert.equal((await as(token, "PUT", "/api/v1/nodes/n1", nodeObject("n1"))).status, 200);
    assert.equal((await as(token, "PUT", "/api/v1/nodes/n1/status", { status: { ready: true } })).status, 200);
    assert.equal((await server.call("POST", "/api/v1/nodes", nodeObject("n2"))).status, 201);
    await refused(await as(token, "PUT", "/api/v1/nodes/n2/status", { status: { ready: false } }), /node n1/, /PUT \/api\/v1\/nodes\/:name\/status/);
    await refused(await as(token, "DELETE", "/api/v1/nodes/n1"), /node/, /DELETE/);
    assert.equal((await as(token, "POST", "/api/v1/events", eventAbout("e1", "Machine", "m1"))).status, 201);
    assert.equal((await as(token, "POST", "/api/v1/events", eventAbout("e2", "Node", "n1"))).status, 201);
    await refused(await as(token, "POST", "/api/v1/events", eventAbout("e3", "Machine", "m2")), /node n1/, /events only about/);
    await refused(await as(token, "POST", "/api/v1/events", eventAbout("e4", "Service", "web")), /node n1/, /events only about/);
    // The agent deletes its stopped machines.
    assert.equal((await as(token, "DELETE", "/api/v1/machines/m1")).status, 200);
    assert.equal((await server.call("POST", "/api/v1/machines", machine("m1", "n1"))).status, 201);
  });

  test("a proxy token reads services, machines and nodes, watches them, reports load and nothing else", async () => {
    const token = tokens.proxy!;
    for (const path of ["/api/v1/services", "/api/v1/services/web", "/api/v1/machines", "/api/v1/machines/m1", "/api/v1/nodes"]) assert.equal((await as(token, "GET", path)).status, 200, path);
    const watch = await as(token, "GET", "/api/v1/machines?watch=true");
    assert.equal(watch.status, 200);
    await watch.body?.cancel();
    assert.equal((await as(token, "PUT", "/api/v1/services/web/load", { inFlight: 1, waiting: 0 })).status, 204);
    assert.deepEqual(loads, ["web"]);
    await refused(await as(token, "POST", "/api/v1/services", service("evil")), /a proxy token \("edge"\)/, /report load .* open tunnels/);
    await refused(await as(token, "PUT", "/api/v1/machines/m1/status", { status: { phase: "ready" } }), /proxy/, /status/);
    await refused(await as(token, "POST", "/api/v1/services/web/scale", { replicas: 5 }), /proxy/, /scale/);
    for (const path of ["/api/v1/events", "/api/v1/images", "/api/v1/watch", "/metrics", "/api/v1/machines/m1/console"]) {
      await refused(await as(token, "GET", path), /proxy/, /GET/);
    }
  });

  test("env values are an admin's, and an agent's for machines on its node; other roles see only the keys", async () => {
    const secretEnv = { API_TOKEN: "s3cr3t-value", MODE: "x" };
    assert.equal((await server.call("POST", "/api/v1/services", service("envy", { image: "hello", replicas: 1, env: secretEnv }))).status, 201);
    for (const [name, node] of [["env-n1", "n1"], ["env-n2", "n2"]] as const) {
      const m = machine(name, node);
      assert.equal((await server.call("POST", "/api/v1/machines", { ...m, spec: { ...m.spec, env: secretEnv } })).status, 201);
    }
    const hidden = { API_TOKEN: "(hidden)", MODE: "(hidden)" };
    const envOf = async (token: string, path: string) => ((await (await as(token, "GET", path)).json()) as { spec: { env?: Record<string, string> } }).spec.env;
    assert.deepEqual(await envOf(server.token, "/api/v1/services/envy"), secretEnv, "admin sees values");
    for (const token of [tokens.reader!, tokens.proxy!, tokens.n1!]) assert.deepEqual(await envOf(token, "/api/v1/services/envy"), hidden);
    for (const token of [tokens.reader!, tokens.proxy!]) assert.deepEqual(await envOf(token, "/api/v1/machines/env-n1"), hidden);
    assert.deepEqual(await envOf(tokens.n1!, "/api/v1/machines/env-n1"), secretEnv, "an agent sees its own machine's env");
    assert.deepEqual(await envOf(tokens.n1!, "/api/v1/machines/env-n2"), hidden, "not another node's");
    const listed = await (await as(tokens.reader!, "GET", "/api/v1/machines")).text();
    assert.ok(!listed.includes("s3cr3t-value"), "not in a list");
    // Nor in a watch, from the start of history.
    const watch = await as(tokens.reader!, "GET", "/api/v1/watch?resourceVersion=0");
    const reader = new StreamReader(watch);
    let seen = "";
    while (!seen.includes('"env-n2"')) seen += `${await reader.until("\n")}\n`;
    await reader.cancel();
    assert.ok(seen.includes('"API_TOKEN":"(hidden)"') && !seen.includes("s3cr3t-value"), seen.slice(0, 300));
  });

  test("tokens: listed without secrets or hashes, a node token needs its node, names are unique, admin only", async () => {
    const list = (await (await server.call("GET", "/api/v1/tokens")).json()) as { items: Record<string, unknown>[] };
    const names = list.items.map((t) => t.name);
    assert.ok(names.includes("dashboard") && names.includes("edge"), JSON.stringify(names));
    const n1 = list.items.find((t) => t.role === "node");
    assert.equal(n1?.node, "n1");
    assert.match(String(n1?.name), /^node-n1-[0-9a-f]{6}$/);
    for (const item of list.items) assert.deepEqual(Object.keys(item).sort(), ["createdAt", "id", "name", "role", ...(item.node ? ["node"] : [])].sort());
    const text = JSON.stringify(list);
    for (const secret of Object.values(tokens)) assert.ok(!text.includes(secret!.slice(22)), "no secret in the list");

    assert.equal((await server.call("POST", "/api/v1/tokens", { role: "node" })).status, 400);
    assert.equal((await server.call("POST", "/api/v1/tokens", { role: "proxy", node: "n1" })).status, 400);
    assert.equal((await server.call("POST", "/api/v1/tokens", { role: "root" })).status, 400);
    assert.equal((await server.call("POST", "/api/v1/tokens", { role: "proxy", name: "edge" })).status, 409);
    // Tokens are not a resource kind: the generic routes know nothing of them.
    assert.equal((await server.call("GET", "/api/v1/watch?resourceVersion=0")).status, 200);
    const all = await (await server.call("GET", "/api/v1/machines")).text();
    assert.ok(!all.includes("pith_"), "no token in the resources");
  });

  test("a revoked token gets 401 at once, and its open watch is cut", async () => {
    const token = await mint("read-only", undefined, "short-lived");
    const watch = await as(token, "GET", "/api/v1/services?watch=true");
    assert.equal(watch.status, 200);
    const reader = new StreamReader(watch);
    const revoked = await server.call("DELETE", "/api/v1/tokens/short-lived");
    assert.equal(revoked.status, 200);
    assert.equal(((await revoked.json()) as { name: string }).name, "short-lived");
    // Cut by the server: the stream ends (or errors), where a live watch would time out here.
    const ended = await reader.rest(3000).then(() => "ended", (e: unknown) => String(e));
    assert.doesNotMatch(ended, /timed out/);
    const after = await as(token, "GET", "/api/v1/services");
    assert.equal(after.status, 401);
    assert.match(((await after.json()) as Json).error?.message ?? "", /not valid \(or was revoked\)/);
    assert.equal((await server.call("DELETE", "/api/v1/tokens/short-lived")).status, 404);
  });

  test("a token that looks like a registry token but is not in it: 401", async () => {
    const forged = `pith_${"0".repeat(16)}_${"1".repeat(64)}`;
    assert.equal((await as(forged, "GET", "/api/v1/services")).status, 401);
    // The right id with a wrong secret.
    const real = tokens.reader!;
    assert.equal((await as(`${real.slice(0, 22)}${"f".repeat(64)}`, "GET", "/api/v1/services")).status, 401);
  });
});
