import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, describe, test } from "node:test";
import { proxyEngineContract } from "../proxy-engine-contract.ts";
import { assertPortFree, FakeRoutes, send, startBackend, type TestBackend, until } from "../test-support.ts";
import { HaproxyEngine } from "./haproxy-engine.ts";

const HAPROXY = "/usr/sbin/haproxy";
const skip = existsSync(HAPROXY) ? false : `${HAPROXY} is missing: install it with apt-get install haproxy (scripts/setup.sh does)`;

proxyEngineContract("haproxy", (options) => new HaproxyEngine({ ...options, onError: (e) => console.error("haproxy engine:", e), threads: 1, haproxy: HAPROXY }), { skip });

/** The haproxy data path as run-proxy.ts assembles it: Pith's node proxy on a private port behind HAProxy. */
async function startEngine(routes: FakeRoutes, errors: unknown[]): Promise<{ port: number; engine: HaproxyEngine; close(): Promise<void> }> {
  const engine = new HaproxyEngine({ routes, server: { holdTimeoutMs: 5000 }, onError: (e) => errors.push(e), threads: 1, haproxy: HAPROXY });
  try {
    return { port: await engine.listen("127.0.0.1", 0), engine, close: () => engine.close() };
  } catch (error) {
    await engine.close();
    throw error;
  }
}

describe("haproxy engine", { skip }, () => {
  const cleanup: (() => Promise<void>)[] = [];
  const errors: unknown[] = [];
  after(async () => {
    for (const close of cleanup.reverse()) await close();
  });
  const backend = async (name: string): Promise<TestBackend> => {
    const b = await startBackend(name);
    cleanup.push(b.close);
    return b;
  };

  test("routes by Host through HAProxy, balances, follows route changes, falls back to Pith for holds and 404s", async () => {
    const web = await backend("web");
    const a1 = await backend("a1");
    const a2 = await backend("a2");
    const routes = new FakeRoutes();
    routes.set("web", [web.url], { hosts: ["www.example.com"] });
    routes.set("api", [a1.url, a2.url]);
    const { port, engine, close } = await startEngine(routes, errors);
    cleanup.push(close);

    // Route by Host, case and port ignored. The first request for a spec host goes through Pith's
    // fallback, which teaches HAProxy the host; later ones go straight to the machine.
    assert.equal((await send(port, "WWW.Example.com:8080", "/a")).json().backend, "web");
    await engine.settled();
    const direct = await send(port, "www.example.com", "/b");
    assert.equal(direct.json().backend, "web");
    const headers = web.requests[1]!.headers;
    assert.equal(headers["x-forwarded-for"], "127.0.0.1", "HAProxy's request: one hop, no Pith in between");
    assert.equal(headers["x-forwarded-proto"], "http");
    assert.equal(headers["x-forwarded-host"], "www.example.com");
    assert.match(String(headers["x-request-id"]), /^[0-9a-f-]{36}$/);
    const kept = await send(port, "www.example.com", "/c", { headers: { "x-request-id": "client-id-1" } });
    assert.equal(kept.json<{ headers: Record<string, string> }>().headers["x-request-id"], "client-id-1");

    // <service>.localhost is HAProxy's from the start; two machines share the requests (leastconn).
    await engine.settled();
    for (let i = 0; i < 20; i++) assert.equal((await send(port, "api.localhost", "/")).status, 200);
    assert.ok(a1.requests.length >= 5 && a2.requests.length >= 5, `balanced: ${a1.requests.length} / ${a2.requests.length}`);

    // A machine removed from the route gets no more requests.
    routes.set("api", [a2.url]);
    await engine.settled();
    const before = a1.requests.length;
    for (let i = 0; i < 10; i++) assert.equal((await send(port, "api.localhost", "/")).json().backend, "a2");
    assert.equal(a1.requests.length, before);

    // Unknown hosts get Pith's 404 (from the fallback), with a request id.
    const missing = await send(port, "nope.example.com", "/");
    assert.equal(missing.status, 404);
    assert.equal(missing.json<{ error: { code: string } }>().error.code, "NoRoute");
    assert.ok(missing.headers["x-request-id"]);

    // A service with no machine (scales to zero): the request is held by Pith's fallback and
    // served once a machine is ready; after that HAProxy serves the host itself.
    routes.set("cold", [], { hosts: ["cold.example.com"], minZero: true });
    const held = send(port, "cold.example.com", "/held");
    await until(() => (engine.server.proxyLoad().cold?.waiting ?? 0) === 1, 3000, "the request to be held");
    const cold = await backend("cold");
    routes.set("cold", [cold.url], { hosts: ["cold.example.com"], minZero: true });
    const reply = await held;
    assert.equal(reply.status, 200);
    assert.equal(reply.json().backend, "cold");
    await engine.settled();
    assert.equal((await send(port, "cold.example.com", "/again")).json().backend, "cold");
    assert.equal(cold.requests[1]?.headers["x-forwarded-for"], "127.0.0.1", "served by HAProxy, not through the fallback");

    // Back to zero machines: the host goes back to the fallback, which holds again.
    routes.set("cold", [], { hosts: ["cold.example.com"], minZero: true });
    await engine.settled();
    const heldAgain = send(port, "cold.example.com", "/held-again");
    await until(() => (engine.server.proxyLoad().cold?.waiting ?? 0) === 1, 3000, "the request to be held again");
    routes.set("cold", [cold.url], { hosts: ["cold.example.com"], minZero: true });
    assert.equal((await heldAgain).json().backend, "cold");

    // A deleted service: its hosts go back to Pith, which answers 404.
    routes.delete("web");
    await engine.settled();
    assert.equal((await send(port, "www.example.com", "/")).status, 404);

    // Load: HAProxy's sessions per service are counted; sampled every 100 ms, so idle shortly after.
    await until(() => engine.load().api?.inFlight === 0, 2000, "api's in-flight count to fall to 0");
    assert.equal(engine.load().api?.inFlight, 0);
    assert.deepEqual(errors, []);
  });

  test("more services than the pool's backends: the config grows with a seamless reload, and every service still routes", async () => {
    const b1 = await backend("g1");
    const b2 = await backend("g2");
    const routes = new FakeRoutes();
    const { port, engine, close } = await startEngine(routes, errors);
    cleanup.push(close);
    // 20 services against an initial pool of 16 backends: the 17th needs a reload (USR2).
    for (let i = 0; i < 20; i++) routes.set(`g${i}`, [i % 2 === 0 ? b1.url : b2.url]);
    await engine.settled();
    for (let i = 0; i < 20; i++) {
      const reply = await send(port, `g${i}.localhost`, "/");
      assert.equal(reply.json().backend, i % 2 === 0 ? "g1" : "g2", `g${i}`);
      // One X-Forwarded-For entry: HAProxy reached the machine itself, not through Pith.
      assert.equal(reply.json<{ headers: Record<string, string> }>().headers["x-forwarded-for"], "127.0.0.1", `g${i} served by HAProxy`);
    }
    assert.deepEqual(errors, []);
  });

  test("never a backend off the loopback, and never a host that is not a plain host name, in HAProxy's runtime API or map", async () => {
    const good = await backend("good");
    const routes = new FakeRoutes();
    const ownErrors: unknown[] = [];
    const injected = "x.example.com\nset server pith_b0/s0 addr 10.0.0.1 port 80";
    const { port, engine, close } = await startEngine(routes, ownErrors);
    cleanup.push(close);
    // No request is ever sent for "bad": its fallback would dial the address the route names.
    routes.set("bad", ["http://10.1.2.3:8080/", "http://[fe80::1]:8080/"]);
    routes.set("web", [good.url], { hosts: ["ok.example.com", "a b.example.com", injected, "semi;colon.example.com"] });
    routes.set("odd service", [good.url]);
    // What the fallback sees when a request for each host passes through Pith.
    for (const host of ["ok.example.com", "a b.example.com", injected, "semi;colon.example.com"]) assert.equal(engine.fallbackRoutes.lookup(host, "/")?.service, "web", host);
    await engine.settled();
    const { slots, map } = engine.applied();
    assert.deepEqual([...map.keys()].sort(), ["ok.example.com", "web.localhost"]);
    for (const endpoint of slots.values()) assert.match(endpoint, /^127\.0\.0\.1:\d+$/);
    assert.equal(slots.size, 2, "web and odd service have a slot each, bad none");
    const messages = ownErrors.map((e) => (e as Error).message);
    assert.ok(messages.some((m) => /gets no HAProxy slot: 10\.1\.2\.3 is not loopback/.test(m)), JSON.stringify(messages));
    assert.ok(messages.some((m) => /gets no HAProxy slot: fe80::1 is not loopback/.test(m)), JSON.stringify(messages));
    assert.ok(messages.some((m) => /"odd service\.localhost" stays with Pith's proxy/.test(m)), JSON.stringify(messages));
    assert.ok(!messages.some((m) => /haproxy runtime API/.test(m)), `no command failed: ${JSON.stringify(messages)}`);
    assert.equal((await send(port, "ok.example.com", "/")).json().backend, "good");
  });

  test("close stops HAProxy and removes its files; the port is free again", async () => {
    const routes = new FakeRoutes();
    const { port, engine, close } = await startEngine(routes, errors);
    assert.equal((await send(port, "x.localhost", "/")).status, 404);
    const { dir, processGroup } = engine.runtime;
    assert.ok(dir && existsSync(dir) && processGroup !== undefined);
    await close();
    assert.equal(existsSync(dir), false, "its config, map and socket are gone");
    assert.throws(() => process.kill(-processGroup, 0), { code: "ESRCH" }, "no HAProxy process is left, workers included");
    await assertPortFree(port);
  });
});
