import assert from "node:assert/strict";
import { createServer } from "node:net";
import { describe, test } from "node:test";
import type { ProxyEngine, ProxyEngineOptions } from "./proxy-engine.ts";
import { assertPortFree, FakeRoutes, send, startBackend, type TestBackend, until } from "./test-support.ts";

/**
 * The behaviour every ProxyEngine must have: each engine's test file calls proxyEngineContract()
 * with a way to make one from the options run-proxy.ts gives it.
 */
export function proxyEngineContract(name: string, make: (options: ProxyEngineOptions) => ProxyEngine, options: { skip?: string | false } = {}): void {
  /** Runs a test body with a fresh engine listening on a free port, and backends it may start; all closed afterwards. */
  const withEngine =
    (body: (engine: ProxyEngine, port: number, routes: FakeRoutes, backend: (name: string, delayMs?: number) => Promise<TestBackend>) => Promise<void>) =>
    async () => {
      const routes = new FakeRoutes();
      const engine = make({ routes, server: { holdTimeoutMs: 5000 } });
      const backends: TestBackend[] = [];
      try {
        const port = await engine.listen("127.0.0.1", 0);
        await body(engine, port, routes, async (name, delayMs = 0) => {
          const b = await startBackend(name, delayMs > 0 ? (_req, res) => setTimeout(() => res.end(name), delayMs) : undefined);
          backends.push(b);
          return b;
        });
      } finally {
        await engine.close();
        for (const b of backends) await b.close();
      }
    };

  describe(`ProxyEngine contract: ${name}`, { skip: options.skip ?? false }, () => {
    test("routes by Host to a ready machine of the service, and answers 404 with a request id for other hosts", withEngine(async (_engine, port, routes, backend) => {
      const web = await backend("web-1");
      routes.set("web", [web.url], { hosts: ["www.example.com"] });
      for (const host of ["www.example.com", "WWW.example.com:80", "web.localhost", "www.example.com"]) assert.equal((await send(port, host, "/")).json().backend, "web-1", host);
      const missing = await send(port, "nobody.example.com", "/");
      assert.equal(missing.status, 404);
      assert.equal(missing.json<{ error: { code: string } }>().error.code, "NoRoute");
      assert.ok(missing.headers["x-request-id"]);
    }));

    test("holds a request while the service has no machine, counts it as waiting, and serves it once one is ready", withEngine(async (engine, port, routes, backend) => {
      routes.set("cold", [], { minZero: true });
      const held = send(port, "cold.localhost", "/held");
      await until(() => engine.load().cold?.waiting === 1, 3000, "the request to be held");
      const machine = await backend("cold-1");
      routes.set("cold", [machine.url], { minZero: true });
      const reply = await held;
      assert.equal(reply.status, 200);
      assert.equal(reply.json().backend, "cold-1");
      await until(() => engine.load().cold?.waiting === 0, 3000, "the hold to end");
    }));

    test("counts a request being served as in flight until its response ends", withEngine(async (engine, port, routes, backend) => {
      const slow = await backend("slow-1", 1500);
      routes.set("slow", [slow.url]);
      const pending = send(port, "slow.localhost", "/");
      await until(() => engine.load().slow?.inFlight === 1, 3000, "the request in flight");
      assert.equal((await pending).body, "slow-1");
      await until(() => engine.load().slow?.inFlight === 0, 3000, "the request to end");
    }));

    test("a port in use is an error from listen, and close still cleans up", async () => {
      const taken = createServer();
      await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
      const port = (taken.address() as { port: number }).port;
      const engine = make({ routes: new FakeRoutes(), server: {} });
      try {
        await assert.rejects(engine.listen("127.0.0.1", port));
      } finally {
        await engine.close();
        await new Promise((resolve) => taken.close(resolve));
      }
    });

    test("close before listen resolves (run-proxy closes the engine when the routes cannot start)", async () => {
      await make({ routes: new FakeRoutes(), server: {} }).close();
    });

    test("close frees the port", async () => {
      const engine = make({ routes: new FakeRoutes(), server: {} });
      let closed = false;
      try {
        const port = await engine.listen("127.0.0.1", 0);
        assert.equal((await send(port, "x.localhost", "/")).status, 404);
        await engine.close();
        closed = true;
        await assertPortFree(port);
      } finally {
        if (!closed) await engine.close();
      }
    });
  });
}
