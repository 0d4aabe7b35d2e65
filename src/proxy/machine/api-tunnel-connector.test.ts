import assert from "node:assert/strict";
import { type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { after, before, describe, test } from "node:test";
import { startTestServer, type TestServer } from "../../api/test-support.ts";
import { PithClient } from "../../client/index.ts";
import type { MachineStatus } from "../../model/kinds.ts";
import { RouteTable } from "../routes/route-table.ts";
import { refusedUrl, send, startBackend, startProxy, type TestBackend, type TestProxy, until } from "../test-support.ts";
import { TunnelError } from "../../client/machine-tunnel.ts";
import { ApiTunnelConnector } from "./api-tunnel-connector.ts";
import { proxyMachineSettings, runProxyMachine } from "./proxy-machine.ts";

const GUEST_PORT = 8080;

const machine = (name: string, service = "web") => ({
  apiVersion: "pith.dev/v1" as const,
  kind: "Machine" as const,
  metadata: { name },
  spec: { service, image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running" as const },
});

const status = (url: string, phase: MachineStatus["phase"] = "ready"): MachineStatus => ({
  phase,
  addresses: [{ guestPort: GUEST_PORT, hostPort: Number(new URL(url).port), url }],
});

/** Resolves with 'connect' or rejects with the 'error' a connector's duplex emits. */
function connected(conn: Duplex): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.once("connect", () => resolve());
    conn.once("error", reject);
  });
}

/** Reads from `conn` until `text` has arrived. */
async function readUntil(conn: Duplex, text: string): Promise<string> {
  let received = "";
  conn.on("data", (chunk: Buffer) => (received += chunk.toString()));
  await until(() => received.includes(text), 3000, JSON.stringify(text));
  return received;
}

async function tunnelsOpened(server: TestServer): Promise<number> {
  const metrics = await (await server.call("GET", "/metrics")).text();
  const match = /pith_api_requests_total\{method="GET",route="\/api\/v1\/machines\/:name\/tunnel\/:port",status="101"\} (\d+)/.exec(metrics);
  return Number(match?.[1] ?? 0);
}

describe("ApiTunnelConnector against a real control plane", () => {
  let server: TestServer;
  let client: PithClient;
  let api: { host: string; port: number };
  let connector: ApiTunnelConnector;
  const backends: TestBackend[] = [];
  let web1: TestBackend;
  let refused: string;
  /** The proxy's own token: role proxy, as the proxy machine should be given. */
  let proxyToken: string;
  let proxyClient: PithClient;

  before(async () => {
    server = await startTestServer();
    client = new PithClient({ server: server.url, token: server.token });
    api = { host: "127.0.0.1", port: Number(new URL(server.url).port) };
    const minted = await server.call("POST", "/api/v1/tokens", { role: "proxy", name: "edge" });
    assert.equal(minted.status, 201);
    proxyToken = ((await minted.json()) as { secret: string }).secret;
    proxyClient = new PithClient({ server: server.url, token: proxyToken });
    connector = new ApiTunnelConnector({ ...api, token: proxyToken });
    await client.create({ apiVersion: "pith.dev/v1", kind: "Image", metadata: { name: "img-abc" }, spec: { digest: "sha256:abc", runtime: "native", memoryMiB: 64, vcpus: 1, listen: [GUEST_PORT], egress: [], storedBytes: 1 } });
    await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "web" }, spec: { image: "x", replicas: 2, hosts: ["web.test"] } });
    web1 = await startBackend("web-1");
    backends.push(web1);
    web1.server.on("upgrade", (_req, socket: Socket) => {
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n");
      socket.pipe(socket);
    });
    refused = await refusedUrl();
    await client.create(machine("web-1"));
    await client.updateStatus("Machine", "web-1", status(web1.url));
    await client.create(machine("booting-1", "other"));
    await client.updateStatus("Machine", "booting-1", status(web1.url, "booting"));
    await client.create(machine("refused-1", "other"));
    await client.updateStatus("Machine", "refused-1", status(refused));
  });

  after(async () => {
    for (const b of backends) await b.close();
    await server.close();
  });

  test("connects by machine name: the target's hostname is never dialled, writes before 'connect' are held", async () => {
    const port = Number(new URL(web1.url).port);
    // 192.0.2.1 (TEST-NET-1) is unroutable: only the API's knowledge of web-1 can make this work.
    const conn = connector.connect({ machine: "web-1", hostname: "192.0.2.1", port });
    assert.equal((conn as Duplex & { connecting: boolean }).connecting, true);
    conn.write("GET /held HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const reading = readUntil(conn, '"url":"/held"');
    await connected(conn);
    assert.match(await reading, /^HTTP\/1\.1 200 /);
    conn.destroy();
  });

  test("refusals arrive as 'error' then 'close', never 'connect', with codes the proxy classifies", async () => {
    const cases: { machine: string; port: number; token?: string; code: string; status: number; message: RegExp }[] = [
      { machine: "nope", port: 1234, code: "ETUNNELNOTFOUND", status: 404, message: /machine nope/ },
      { machine: "web-1", port: 1, code: "ETUNNELNOTFOUND", status: 404, message: /forwards nothing at port 1/ },
      { machine: "booting-1", port: Number(new URL(web1.url).port), code: "ETUNNELNOTREADY", status: 409, message: /booting, not ready/ },
      { machine: "refused-1", port: Number(new URL(refused).port), code: "ECONNREFUSED", status: 502, message: /did not accept a connection/ },
      { machine: "web-1", port: Number(new URL(web1.url).port), token: "b".repeat(64), code: "ETUNNELAUTH", status: 401, message: /not valid/ },
    ];
    for (const c of cases) {
      const via = c.token ? new ApiTunnelConnector({ ...api, token: c.token }) : connector;
      const conn = via.connect({ machine: c.machine, hostname: "127.0.0.1", port: c.port });
      let connects = 0;
      conn.on("connect", () => connects++);
      const closed = new Promise((resolve) => conn.once("close", resolve));
      const error = await connected(conn).then(
        () => assert.fail(`${c.machine}: connected`),
        (e: unknown) => e,
      );
      await closed;
      assert.ok(error instanceof TunnelError, String(error));
      assert.equal(error.code, c.code, `${c.machine}: ${error.message}`);
      assert.equal(error.status, c.status, c.machine);
      assert.match(error.message, c.message);
      assert.equal(connects, 0);
    }
  });

  test("a proxy token watches and tunnels (above) but may not create a service or read a console", async () => {
    const created = proxyClient.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "evil" }, spec: { image: "x", replicas: 1 } });
    await assert.rejects(created, (e: { status?: number; message: string }) => e.status === 403 && /a proxy token \("edge"\) may not POST \/api\/v1\/services/.test(e.message));
    assert.equal(await client.get("Service", "evil"), undefined);
    const consoleAnswer = await fetch(`${server.url}/api/v1/machines/web-1/console`, { headers: { authorization: `Bearer ${proxyToken}` } });
    assert.equal(consoleAnswer.status, 403);
  });

  test("an API that is down: ECONNREFUSED", async () => {
    const down = new URL(await refusedUrl());
    const conn = new ApiTunnelConnector({ host: "127.0.0.1", port: Number(down.port), token: server.token }).connect({ machine: "web-1", hostname: "127.0.0.1", port: 1 });
    const error = (await connected(conn).catch((e: unknown) => e)) as { code?: string };
    assert.equal(error.code, "ECONNREFUSED");
  });

  test("destroyed while connecting: no late 'connect'", async () => {
    const conn = connector.connect({ machine: "web-1", hostname: "127.0.0.1", port: Number(new URL(web1.url).port) });
    let connects = 0;
    conn.on("connect", () => connects++);
    conn.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(connects, 0);
  });

  describe("as the proxy's connector", () => {
    let proxy: TestProxy;
    let table: RouteTable;
    const stop = new AbortController();

    before(async () => {
      table = new RouteTable(proxyClient);
      await table.start(stop.signal);
      proxy = await startProxy(table, { connector });
    });

    after(async () => {
      await proxy.close();
      stop.abort();
      await table.done;
    });

    test("requests, a body and an upgrade reach the machine through tunnels, kept alive between requests", async () => {
      const before = await tunnelsOpened(server);
      for (let i = 0; i < 5; i++) {
        const reply = await send(proxy.port, "web.test", `/n/${i}`);
        assert.equal(reply.status, 200, reply.body);
        assert.equal(reply.json().backend, "web-1");
      }
      const posted = await send(proxy.port, "web.test", "/post", { method: "POST", body: "payload", headers: { "content-type": "text/plain" } });
      assert.equal(posted.json().body, "payload");
      const afterRequests = await tunnelsOpened(server);
      assert.ok(afterRequests > before, "the requests went through the API's tunnel");
      assert.ok(afterRequests - before < 6, `tunnels are reused like connections (${afterRequests - before} for 6 requests)`);

      const { connect } = await import("node:net");
      const ws = connect(proxy.port, "127.0.0.1");
      ws.write("GET /ws HTTP/1.1\r\nHost: web.test\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n");
      let received = "";
      ws.on("data", (chunk: Buffer) => (received += chunk.toString()));
      await until(() => received.includes("\r\n\r\n"), 3000, "the 101");
      assert.match(received, /^HTTP\/1\.1 101 /);
      ws.write("ping");
      await until(() => received.endsWith("ping"), 3000, "the echo");
      ws.destroy();
    });

    test("a machine whose forward refuses is retried on another one (GET)", async () => {
      await client.create(machine("web-0")); // sorts first: tried first when both are idle
      await client.updateStatus("Machine", "web-0", status(refused));
      await until(() => table.lookup("web.test", "/")?.backends.length === 2, 2000, "two backends");
      for (let i = 0; i < 4; i++) {
        const reply = await send(proxy.port, "web.test", "/");
        assert.equal(reply.status, 200, reply.body);
        assert.equal(reply.json().backend, "web-1");
      }
      await client.delete("Machine", "web-0");
    });
  });

  test("the proxy machine's program, run outside a machine: routes through the API alone", async () => {
    const settings = proxyMachineSettings({ API_TOKEN: proxyToken, CONTROL_PLANE: `127.0.0.1:${api.port}`, PORT: "0" });
    assert.deepEqual(settings.dial, api);
    const running = await runProxyMachine(settings);
    try {
      const port = Number(new URL(running.url).port);
      const before = await tunnelsOpened(server);
      const reply = await send(port, "web.test", "/from-the-machine-program");
      assert.equal(reply.status, 200, reply.body);
      assert.equal(reply.json().url, "/from-the-machine-program");
      assert.ok((await tunnelsOpened(server)) > before, "through a tunnel");
      assert.equal((await send(port, "nothing.test", "/")).status, 404);
    } finally {
      await running.close();
    }
  });

  test("the proxy machine never routes to its own service: a request would come back to it", async () => {
    await client.create({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "edge" }, spec: { image: "x", replicas: 1, hosts: ["edge.test"] } });
    await client.create(machine("edge-1", "edge"));
    await client.updateStatus("Machine", "edge-1", status(web1.url));
    const settings = proxyMachineSettings({ API_TOKEN: proxyToken, CONTROL_PLANE: `127.0.0.1:${api.port}`, PORT: "0" });
    const running = await runProxyMachine(settings, { machine: "edge-1" });
    try {
      const port = Number(new URL(running.url).port);
      for (const host of ["edge.test", "edge.localhost"]) assert.equal((await send(port, host, "/")).status, 404, host);
      assert.equal((await send(port, "web.test", "/")).status, 200);
    } finally {
      await running.close();
      await client.delete("Machine", "edge-1");
      await client.delete("Service", "edge");
    }
  });

  test("the proxy machine's settings: a token is required, the API defaults to the only egress", () => {
    assert.throws(() => proxyMachineSettings({ CONTROL_PLANE: "127.0.0.1:7070" }), /API_TOKEN is not set/);
    assert.throws(() => proxyMachineSettings({ API_TOKEN: "t" }), /CONTROL_PLANE is not set/);
    assert.throws(() => proxyMachineSettings({ API_TOKEN: "t", CONTROL_PLANE: "127.0.0.1:7070", PORT: "http" }), /not a port/);
    assert.deepEqual(proxyMachineSettings({ API_TOKEN: "t", CONTROL_PLANE: "127.0.0.1:7070" }), {
      controlPlane: "127.0.0.1:7070",
      dial: { host: "127.0.0.1", port: 7070 },
      token: "t",
      port: 8080,
    });
  });
});
