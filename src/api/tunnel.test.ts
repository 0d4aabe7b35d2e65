import assert from "node:assert/strict";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import type { MachineStatus } from "../model/kinds.ts";
import { startEcho } from "../../test/support/echo-server.ts";
import { startTestServer, type TestServer } from "./test-support.ts";

const machine = (name: string) => ({
  apiVersion: "pith.dev/v1",
  kind: "Machine",
  metadata: { name },
  spec: { service: "web", image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running" },
});

/** The machines' image: 9090 is declared but never forwarded, 2222 is not declared at all. */
const image = (digest = "sha256:abc", listen = [8080, 9090]) => ({
  apiVersion: "pith.dev/v1",
  kind: "Image",
  metadata: { name: `img-${digest.slice(7)}` },
  spec: { digest, runtime: "native", memoryMiB: 64, vcpus: 1, listen, egress: [], storedBytes: 1 },
});

const forwarded = (hostPort: number, phase: MachineStatus["phase"] = "ready", host = "127.0.0.1"): MachineStatus => ({
  phase,
  addresses: [{ guestPort: 8080, hostPort, url: `http://${host}:${hostPort}/` }],
});

/** A raw client connection: what it sent, and everything received so far. */
interface Raw {
  socket: Socket;
  received(): string;
  until(text: string, timeoutMs?: number): Promise<string>;
  closed: Promise<void>;
}

function raw(port: number, request: string): Raw {
  const socket = connect(port, "127.0.0.1");
  let received = "";
  socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
  socket.on("error", () => undefined);
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.write(request);
  return {
    socket,
    received: () => received,
    closed,
    async until(text, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (!received.includes(text)) {
        if (Date.now() > deadline) throw new Error(`no ${JSON.stringify(text)} within ${timeoutMs} ms; have ${JSON.stringify(received)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return received;
    },
  };
}

const tunnelRequest = (path: string, token: string | undefined, extra = "") =>
  `GET ${path} HTTP/1.1\r\nHost: api\r\n${token === undefined ? "" : `Authorization: Bearer ${token}\r\n`}Connection: Upgrade\r\nUpgrade: pith-tunnel\r\n\r\n${extra}`;

/** A non-101 answer: status and parsed JSON body (the connection closes after it). */
async function refusal(port: number, request: string): Promise<{ status: number; headers: string; body: { error: { code: string; message: string; hint?: string; cause?: string } } }> {
  const r = raw(port, request);
  await r.closed;
  const text = r.received();
  const end = text.indexOf("\r\n\r\n");
  assert.ok(end > 0, `a response head: ${JSON.stringify(text)}`);
  return { status: Number(text.slice(9, 12)), headers: text.slice(0, end).toLowerCase(), body: JSON.parse(text.slice(end + 4)) };
}

describe("the machine tunnel route", () => {
  let server: TestServer;
  let port: number;
  let echo: Awaited<ReturnType<typeof startEcho>>;

  before(async () => {
    server = await startTestServer();
    port = Number(new URL(server.url).port);
    echo = await startEcho();
    assert.equal((await server.call("POST", "/api/v1/images", image())).status, 201);
    for (const name of ["web-1", "booting-1", "elsewhere-1", "refused-1"]) assert.equal((await server.call("POST", "/api/v1/machines", machine(name))).status, 201);
    const refusedPort = await closedPort();
    const statuses: Record<string, MachineStatus> = {
      "web-1": forwarded(echo.port),
      "booting-1": forwarded(echo.port, "booting"),
      "elsewhere-1": forwarded(echo.port, "ready", "10.9.8.7"),
      "refused-1": forwarded(refusedPort),
    };
    for (const [name, status] of Object.entries(statuses)) assert.equal((await server.call("PUT", `/api/v1/machines/${name}/status`, { status })).status, 200);
  });

  after(async () => {
    await echo.close();
    await server.close();
  });

  test("with the token, a ready machine's port: 101, then bytes both ways (including those sent with the request)", async () => {
    const r = raw(port, tunnelRequest("/api/v1/machines/web-1/tunnel/8080", server.token, "early\n"));
    const head = await r.until("\r\n\r\n");
    assert.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(head, /\r\nUpgrade: pith-tunnel\r\n/i);
    await r.until("echo: early\n");
    r.socket.write("second\n");
    await r.until("echo: second\n");
    r.socket.end();
    await r.closed;
  });

  test("a tunnel is counted in the API's metrics under its route pattern", async () => {
    const metrics = await (await server.call("GET", "/metrics")).text();
    assert.match(metrics, /pith_api_requests_total\{method="GET",route="\/api\/v1\/machines\/:name\/tunnel\/:port",status="101"\} [1-9]/);
  });

  test("the machine closing its side closes the client's", async () => {
    const before = echo.connections();
    const r = raw(port, tunnelRequest("/api/v1/machines/web-1/tunnel/8080", server.token));
    await r.until("\r\n\r\n");
    assert.equal(echo.connections(), before + 1);
    await echo.close(); // destroys the echo's sockets
    await r.closed;
    echo = await startEcho();
    await server.call("PUT", "/api/v1/machines/web-1/status", { status: forwarded(echo.port) });
  });

  test("no token or a wrong one: 401, and the machine is never dialled", async () => {
    const before = echo.connections();
    for (const token of [undefined, "b".repeat(64)]) {
      const { status, body, headers } = await refusal(port, tunnelRequest("/api/v1/machines/web-1/tunnel/8080", token));
      assert.equal(status, 401);
      assert.equal(body.error.code, "Unauthorized");
      assert.match(headers, /connection: close/);
    }
    assert.equal(echo.connections(), before);
  });

  test("an unknown machine, or a port it does not forward: 404", async () => {
    const unknown = await refusal(port, tunnelRequest("/api/v1/machines/nope/tunnel/8080", server.token));
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.error.message, /machine nope not found/);
    const noPort = await refusal(port, tunnelRequest("/api/v1/machines/web-1/tunnel/9090", server.token));
    assert.equal(noPort.status, 404);
    assert.match(noPort.body.error.message, /forwards no guest port 9090 \(it forwards: 8080\)/);
  });

  test("a port the image does not declare in listen: 403, whatever the status forwards, nothing dialled", async () => {
    await server.call("POST", "/api/v1/machines", machine("sneaky-1"));
    const status: MachineStatus = { phase: "ready", addresses: [{ guestPort: 2222, hostPort: echo.port, url: `http://127.0.0.1:${echo.port}/` }] };
    assert.equal((await server.call("PUT", "/api/v1/machines/sneaky-1/status", { status })).status, 200);
    const before = echo.connections();
    const { status: code, body } = await refusal(port, tunnelRequest("/api/v1/machines/sneaky-1/tunnel/2222", server.token));
    assert.equal(code, 403);
    assert.equal(body.error.code, "Forbidden");
    assert.match(body.error.message, /does not declare port 2222 in listen \(it declares: 8080, 9090\)/);
    assert.equal(echo.connections(), before);
  });

  test("a machine whose image is not registered: 404, nothing dialled", async () => {
    await server.call("POST", "/api/v1/machines", { ...machine("orphan-1"), spec: { ...machine("orphan-1").spec, image: "sha256:unknown" } });
    await server.call("PUT", "/api/v1/machines/orphan-1/status", { status: forwarded(echo.port) });
    const before = echo.connections();
    const { status, body } = await refusal(port, tunnelRequest("/api/v1/machines/orphan-1/tunnel/8080", server.token));
    assert.equal(status, 404);
    assert.match(body.error.message, /is not registered/);
    assert.equal(echo.connections(), before);
  });

  test("a machine that is not ready: 409", async () => {
    const { status, body } = await refusal(port, tunnelRequest("/api/v1/machines/booting-1/tunnel/8080", server.token));
    assert.equal(status, 409);
    assert.match(body.error.message, /booting, not ready/);
  });

  test("never an address off the host's loopback, whatever a status says: 409, nothing dialled", async () => {
    const dialled = echo.connections();
    const { status, body } = await refusal(port, tunnelRequest("/api/v1/machines/elsewhere-1/tunnel/8080", server.token));
    assert.equal(status, 409);
    assert.match(body.error.message, /not forwarded on this host's loopback/);
    assert.equal(echo.connections(), dialled);
  });

  test("a forward that refuses: 502 with the system error code", async () => {
    const { status, body } = await refusal(port, tunnelRequest("/api/v1/machines/refused-1/tunnel/8080", server.token));
    assert.equal(status, 502);
    assert.equal(body.error.code, "MachineUnreachable");
    assert.equal(body.error.cause, "ECONNREFUSED");
  });

  test("a bad port or name: 400", async () => {
    for (const path of ["/api/v1/machines/web-1/tunnel/0", "/api/v1/machines/web-1/tunnel/http", "/api/v1/machines/Bad_Name/tunnel/8080"]) {
      const { status } = await refusal(port, tunnelRequest(path, server.token));
      assert.equal(status, 400, path);
    }
  });

  test("the route without an upgrade: 426 saying how to ask", async () => {
    const response = await server.call("GET", "/api/v1/machines/web-1/tunnel/8080");
    assert.equal(response.status, 426);
    assert.equal(response.headers.get("upgrade"), "pith-tunnel");
    const body = (await response.json()) as { error: { hint: string } };
    assert.match(body.error.hint, /Upgrade: pith-tunnel/);
    const otherProtocol = await refusal(port, tunnelRequest("/api/v1/machines/web-1/tunnel/8080", server.token).replace("Upgrade: pith-tunnel", "Upgrade: websocket"));
    assert.equal(otherProtocol.status, 426);
  });

  test("an upgrade request to any other route gets that route's ordinary answer", async () => {
    const r = raw(port, `GET /api/v1/services HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer ${server.token}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
    await r.closed;
    assert.match(r.received(), /^HTTP\/1\.1 200 /);
    assert.match(r.received(), /"kind":"ServiceList"/);
    const missing = await refusal(port, tunnelRequest("/api/v1/widgets", server.token));
    assert.equal(missing.status, 404);
  });
});

test("closing the API server ends its open tunnels", async () => {
  const server = await startTestServer();
  const echo = await startEcho();
  try {
    await server.call("POST", "/api/v1/images", image());
    await server.call("POST", "/api/v1/machines", machine("web-1"));
    await server.call("PUT", "/api/v1/machines/web-1/status", { status: forwarded(echo.port) });
    const r = raw(Number(new URL(server.url).port), tunnelRequest("/api/v1/machines/web-1/tunnel/8080", server.token));
    await r.until("\r\n\r\n");
    await server.close();
    await r.closed;
  } finally {
    await echo.close();
  }
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
