import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { startTestServer, type TestServer } from "../../api/test-support.ts";
import { PithClient } from "../../client/index.ts";
import type { Machine, MachineStatus } from "../../model/kinds.ts";
import { send, startBackend, startProxy, type TestBackend, until } from "../test-support.ts";
import { RouteTable } from "./route-table.ts";
import type { Route } from "./route.ts";

const machine = (name: string, service: string, desiredState: "running" | "stopped" = "running") => ({
  apiVersion: "pith.dev/v1" as const,
  kind: "Machine" as const,
  metadata: { name },
  spec: { service, image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState },
});

const ready = (url: string): MachineStatus => ({ phase: "ready", addresses: [{ guestPort: 8080, hostPort: Number(new URL(url).port), url }] });

describe("RouteTable against a real control plane", () => {
  let server: TestServer;
  let client: PithClient;
  const stop = new AbortController();
  const backends: TestBackend[] = [];
  let table: RouteTable;
  const changes: { service: string; route: Route | undefined; at: number }[] = [];

  before(async () => {
    server = await startTestServer({ server: { heartbeatMs: 200 } });
    client = new PithClient({ server: server.url, token: server.token });
    // Objects from before the table starts come from its initial list.
    await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "early" }, spec: { image: "x", replicas: 1 } });
    const early = await startBackend("early");
    backends.push(early);
    await client.create(machine("early-1", "early"));
    await client.updateStatus("Machine", "early-1", ready(early.url));
    // A machine whose changes mark how far the table has got: see applied().
    await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "fence" }, spec: { image: "x", replicas: 1 } });
    await client.create(machine("fence-1", "fence"));
    table = new RouteTable(client);
    table.onChange((service, route) => changes.push({ service, route, at: performance.now() }));
    await table.start(stop.signal);
  });

  let fences = 0;
  /**
   * Resolves once the table has applied every Machine change written before the call: it writes
   * one more (a new address for fence-1) and waits for the table to route it. Machine changes
   * reach the table in order, so this says "by now" without trusting a clock.
   */
  const applied = async (): Promise<void> => {
    const url = `http://127.0.0.1:${42_000 + ++fences}/`;
    await client.updateStatus("Machine", "fence-1", ready(url));
    await until(() => table.route("fence")?.backends[0]?.url.href === url, 5000, `fence ${fences}`);
  };

  after(async () => {
    stop.abort();
    await table.done;
    for (const b of backends) await b.close();
    await server.close();
  });

  test("the initial list builds the table", () => {
    assert.deepEqual(table.lookup("early.localhost", "/")?.backends.map((b) => b.machine), ["early-1"]);
  });

  test("a machine is routed as soon as it turns ready, kept while its status changes, and dropped once desiredState is stopped", async (t) => {
    await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "web" }, spec: { image: "x", min: 0, max: 2, hosts: ["Web.Example.com"] } });
    await until(() => table.lookup("web.example.com", "/") !== undefined, 1000, "the service's route");
    const route = table.lookup("WEB.example.com:8443", "/");
    assert.equal(route?.service, "web");
    assert.equal(route?.minZero, true);
    assert.equal(table.lookup("web.localhost", "/"), route);
    assert.equal(table.lookup("other.example.com", "/"), undefined);

    const url = "http://127.0.0.1:41001/";
    await client.create(machine("web-1", "web"));
    // Its forwards exist while it boots (the agent reports them then), but nothing is served yet.
    await client.updateStatus("Machine", "web-1", { ...ready(url), phase: "booting" });
    await applied();
    assert.equal(route?.backends.length, 0, "a booting machine is not a backend");

    const changed = new Promise<number>((resolve) => {
      const off = table.onChange((service, r) => {
        if (service === "web" && r?.backends.length === 1) {
          off();
          resolve(performance.now());
        }
      });
    });
    const readyAt = performance.now();
    await client.updateStatus("Machine", "web-1", ready(url));
    // Routed as the change arrives: by the time the next change is applied, and announced.
    await applied();
    assert.equal(route?.backends.length, 1, "routed no later than the next machine change");
    const latency = (await changed) - readyAt;
    t.diagnostic(`ready -> routed in ${latency.toFixed(1)} ms`);
    const backend = table.lookup("web.localhost", "/")?.backends[0];
    assert.equal(backend?.machine, "web-1");
    assert.equal(backend?.url.href, url);

    // A status change that keeps it ready keeps the same Backend object (and so its inFlight count).
    backend!.inFlight = 3;
    await client.updateStatus("Machine", "web-1", { ...ready(url), timings: { readyMs: 12 } });
    await client.create(machine("web-2", "web"));
    await client.updateStatus("Machine", "web-2", ready("http://127.0.0.1:41002/"));
    await until(() => table.lookup("web.localhost", "/")?.backends.length === 2, 1000, "the second backend");
    assert.equal(table.lookup("web.localhost", "/")?.backends[0], backend);
    assert.equal(backend?.inFlight, 3);
    backend!.inFlight = 0;

    // The controller sets desiredState "stopped" before stopping a machine: it leaves the route then.
    const current = (await client.get("Machine", "web-1")) as Machine;
    await client.update({ apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name: "web-1" }, spec: { ...current.spec, desiredState: "stopped" } });
    await applied();
    assert.deepEqual(table.lookup("web.localhost", "/")?.backends.map((b) => b.machine), ["web-2"], "dropped no later than the next machine change");

    await client.updateStatus("Machine", "web-2", { phase: "draining", addresses: ready("http://127.0.0.1:41002/").addresses });
    await until(() => table.lookup("web.localhost", "/")?.backends.length === 0, 1000, "web-2 to leave the route");
  });

  test("hosts follow spec edits, deletes remove routes, and listeners hear of each change", async () => {
    await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "blog" }, spec: { image: "x", replicas: 1, hosts: ["blog.example"] } });
    await until(() => table.lookup("blog.example", "/")?.service === "blog", 1000, "blog's host");
    await client.update({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "blog" }, spec: { image: "x", replicas: 1, hosts: ["news.example"] } });
    await until(() => table.lookup("news.example", "/")?.service === "blog", 1000, "blog's new host");
    assert.equal(table.lookup("blog.example", "/"), undefined);

    await client.create(machine("blog-1", "blog"));
    await client.updateStatus("Machine", "blog-1", ready("http://127.0.0.1:41003/"));
    await until(() => table.route("blog")?.backends.length === 1, 1000, "blog's backend");
    await client.delete("Machine", "blog-1");
    await until(() => table.route("blog")?.backends.length === 0, 1000, "the deleted machine to leave");

    await client.delete("Service", "blog");
    await until(() => changes.some((c) => c.service === "blog" && c.route === undefined), 1000, "the route's removal");
    assert.equal(table.lookup("news.example", "/"), undefined);
    assert.equal(table.lookup("blog.localhost", "/"), undefined);
  });

  test("end to end: a request held by the proxy is served once the control plane reports a machine ready", async () => {
    await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "app" }, spec: { image: "x", min: 0, max: 1 } });
    await until(() => table.route("app") !== undefined, 1000, "app's route");
    const app = await startBackend("app");
    backends.push(app);
    const proxy = await startProxy(table, {
      // Plays the control plane's part: demand for a cold service starts a machine.
      onDemand: (service, load) => {
        if (service !== "app" || load.waiting !== 1) return;
        void (async () => {
          await client.create(machine("app-1", "app"));
          await client.updateStatus("Machine", "app-1", { phase: "booting" });
          await client.updateStatus("Machine", "app-1", ready(app.url));
        })();
      },
    });
    try {
      const reply = await send(proxy.port, "app.localhost", "/hello");
      assert.equal(reply.status, 200);
      assert.equal(reply.json().backend, "app");
      assert.equal(proxy.log[0]?.machine, "app-1");
      assert.ok((proxy.log[0]?.heldMs ?? 0) > 0);
    } finally {
      await proxy.close();
    }
  });
});

describe("RouteTable after a 410 Gone", () => {
  test("relists and rebuilds: gone machines leave, kept ones keep their Backend objects", async () => {
    const meta = (name: string, rv: number) => ({ name, uid: name, resourceVersion: String(rv), generation: 1, labels: {}, createdAt: "", updatedAt: "" });
    const m = (name: string, port: number, rv: number): Machine => ({
      apiVersion: "pith.dev/v1",
      kind: "Machine",
      metadata: meta(name, rv),
      spec: { service: "web", image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running" },
      status: ready(`http://127.0.0.1:${port}/`),
    });
    let machineLists = 0;
    const watches: string[] = [];
    const api = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      const json = (status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
      const list = (kind: string, rv: number, items: unknown[]) => json(200, { apiVersion: "pith.dev/v1", kind, metadata: { resourceVersion: String(rv) }, items });
      if (url.searchParams.get("watch") === "true") {
        watches.push(`${url.pathname}@${url.searchParams.get("resourceVersion")}`);
        if (url.pathname.endsWith("/machines") && url.searchParams.get("resourceVersion") === "5") return json(410, { error: { code: "Gone", message: "compacted" } });
        res.writeHead(200, { "content-type": "application/x-ndjson" }).write(""); // open, quiet
        return;
      }
      if (url.pathname === "/api/v1/services") {
        return list("ServiceList", 5, [{ apiVersion: "pith.dev/v1", kind: "Service", metadata: meta("web", 1), spec: { image: "x", replicas: 2 }, status: {} }]);
      }
      machineLists++;
      if (machineLists === 1) return list("MachineList", 5, [m("m1", 41011, 2), m("m2", 41012, 3)]);
      return list("MachineList", 9, [m("m1", 41011, 2), m("m3", 41013, 8)]);
    });
    await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve));
    const stop = new AbortController();
    const table = new RouteTable(new PithClient({ server: `http://127.0.0.1:${(api.address() as AddressInfo).port}`, token: "t" }));
    const seen: string[][] = [];
    table.onChange((_service, route) => seen.push(route?.backends.map((b) => b.machine) ?? []));
    try {
      await table.start(stop.signal); // the initial lists are applied before the watches start
      const m1 = table.route("web")?.backends[0];
      assert.equal(m1?.machine, "m1");
      await until(() => table.route("web")?.backends.some((b) => b.machine === "m3") === true, 2000, "the relisted machines");
      assert.deepEqual(seen[0], ["m1", "m2"]);
      assert.deepEqual(table.route("web")?.backends.map((b) => b.machine), ["m1", "m3"]);
      assert.equal(table.route("web")?.backends[0], m1, "m1 keeps its Backend object (and in-flight count)");
      await until(() => watches.includes("/api/v1/machines@9"), 2000, "the watch to resume from the relist's revision");
    } finally {
      stop.abort();
      await table.done;
      api.closeAllConnections();
      api.close();
    }
  });
});

test("a backend that is not a literal loopback address and port is refused and reported, never routed", async () => {
  const server = await startTestServer();
  const client = new PithClient({ server: server.url, token: server.token });
  const stop = new AbortController();
  const errors: string[] = [];
  const table = new RouteTable(client, { onError: (e) => errors.push((e as Error).message) });
  try {
    await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "web" }, spec: { image: "x", replicas: 5 } });
    const statuses: Record<string, string> = {
      "web-lan": "http://10.1.2.3:8080/",
      "web-name": "http://localhost:8080/",
      "web-dns": "http://evil.example.com:8080/",
      "web-noport": "http://127.0.0.1/",
      "web-ok": "http://127.0.0.1:8080/",
    };
    for (const [name, url] of Object.entries(statuses)) {
      await client.create(machine(name, "web"));
      await client.updateStatus("Machine", name, { phase: "ready", addresses: [{ guestPort: 8080, hostPort: 8080, url }] });
    }
    await table.start(stop.signal);
    assert.deepEqual(table.lookup("web.localhost", "/")?.backends.map((b) => b.machine), ["web-ok"]);
    // Also when a status changes later (through the watch).
    await client.updateStatus("Machine", "web-ok", { phase: "ready", addresses: [{ guestPort: 8080, hostPort: 8080, url: "http://[fe80::1]:8080/" }] });
    await until(() => table.lookup("web.localhost", "/")?.backends.length === 0, 2000, "web-ok to be dropped");
    for (const [name, reason] of [
      ["web-lan", /10\.1\.2\.3 is not loopback, and its node registered no address/],
      ["web-name", /localhost is not a literal IP address/],
      ["web-dns", /evil\.example\.com is not a literal IP address/],
      ["web-noport", /no explicit port/],
      ["web-ok", /fe80::1 is not loopback/],
    ] as const) {
      assert.ok(errors.some((e) => e.includes(`machine ${name} is not routed`) && reason.test(e)), `${name}: ${JSON.stringify(errors)}`);
    }
  } finally {
    stop.abort();
    await table.done.catch(() => undefined);
    await server.close();
  }
});
