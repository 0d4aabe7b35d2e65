import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";
import { after, test } from "node:test";
import { listen } from "../proxy/test-support.ts";
import { WARM_UP_REQUESTS_PER_CONNECTION, warmUp } from "./warm-up.ts";

const servers: (Server | NetServer)[] = [];
after(() => servers.forEach((s) => s.close()));

/** A machine whose HTTP readiness port is forwarded to `server` on loopback. */
function machineAt(server: Server | NetServer): Parameters<typeof warmUp>[0] {
  const hostPort = (server.address() as AddressInfo).port;
  return { ports: [{ guestPort: 8080, hostPort, url: `http://127.0.0.1:${hostPort}/` }] } as Parameters<typeof warmUp>[0];
}
const image = { readiness: { kind: "http", port: 8080, path: "/healthz" } } as Parameters<typeof warmUp>[1];

interface Seen {
  path: string | undefined;
  headers: IncomingHttpHeaders;
  socket: Socket;
}

async function appServer(options: { close?: boolean } = {}): Promise<{ server: Server; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    seen.push({ path: req.url, headers: req.headers, socket: req.socket });
    if (options.close) res.setHeader("connection", "close");
    res.end("ok");
  });
  servers.push(server);
  await listen(server);
  return { server, seen };
}

const openConnections = (server: Server): Promise<number> => new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))));

test("warm-up requests are the proxy's: forwarded headers, kept-alive connections, none left open", async () => {
  const { server, seen } = await appServer();
  const answered = await warmUp(machineAt(server), image, 8);
  assert.equal(answered, 8);
  assert.equal(seen.length, 8);
  assert.equal(new Set(seen.map((s) => s.socket)).size, 8 / WARM_UP_REQUESTS_PER_CONNECTION, "several requests per connection");
  const port = (server.address() as AddressInfo).port;
  for (const { path, headers } of seen) {
    assert.equal(path, "/healthz");
    assert.equal(headers["x-forwarded-for"], "127.0.0.1");
    assert.equal(headers["x-forwarded-proto"], "http");
    assert.equal(headers["x-forwarded-host"], `127.0.0.1:${port}`);
    assert.match(String(headers["x-request-id"]), /^\S{8,}$/);
    assert.equal(headers.connection, undefined, "HTTP/1.1 keep-alive, as the proxy sends it");
  }
  assert.equal(new Set(seen.map((s) => s.headers["x-request-id"])).size, 8, "a request id each");
  // Every connection was closed from the warm-up's side, its close awaited: the server's end is done.
  assert.ok(seen.every((s) => s.socket.destroyed || s.socket.writableEnded));
  assert.equal(await openConnections(server), 0);
});

test("an app that closes every connection still gets every request, on a connection each", async () => {
  const { server, seen } = await appServer({ close: true });
  assert.equal(await warmUp(machineAt(server), image, 5), 5);
  assert.equal(new Set(seen.map((s) => s.socket)).size, 5);
});

test("a count that does not fill the last connection stops at the count", async () => {
  const { server, seen } = await appServer();
  assert.equal(await warmUp(machineAt(server), image, WARM_UP_REQUESTS_PER_CONNECTION + 1), WARM_UP_REQUESTS_PER_CONNECTION + 1);
  assert.equal(seen.length, WARM_UP_REQUESTS_PER_CONNECTION + 1);
});

test("an app that answers garbage, or hangs up, counts as unanswered and the warm-up ends", async () => {
  for (const behave of [(s: Socket) => s.end("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), (s: Socket) => s.destroy()]) {
    let connections = 0;
    const server = createNetServer((s) => {
      connections++;
      s.once("data", () => behave(s));
    });
    servers.push(server);
    await listen(server);
    assert.equal(await warmUp(machineAt(server), image, 8), 0);
    assert.equal(connections, 1, "no connection per request once one answered nothing");
  }
});

test("an app that trickles its response, never closes, or stalls after one answer is cut off at the request timeout, once", async () => {
  const trickles = createNetServer((s) => {
    s.once("data", () => {
      s.write("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
      const drip = setInterval(() => s.write("x"), 10);
      s.once("close", () => clearInterval(drip));
    });
    s.on("error", () => undefined);
  });
  // Answers every request, and ignores the warm-up's close: the close must not hang either.
  const neverCloses = createNetServer({ allowHalfOpen: true }, (s) => {
    s.on("data", () => s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    s.on("end", () => undefined);
    s.on("error", () => undefined);
  });
  // Answers the first request on each connection, then nothing: a new connection per request
  // left would hold the warm-up for each one's timeout.
  const stallsAfterOne = createNetServer((s) => {
    s.once("data", () => s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    s.on("error", () => undefined);
  });
  // Answers every request, and ignores the warm-up's close: a slow close ends that connection
  // at the timeout, and the warm-up goes on on a new one.
  const closesLate = createNetServer({ allowHalfOpen: true }, (s) => {
    s.on("data", () => s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    s.on("end", () => undefined);
    s.on("error", () => undefined);
  });
  const perConnection = WARM_UP_REQUESTS_PER_CONNECTION;
  for (const [server, requests, expected] of [[trickles, 2, 0], [neverCloses, 2, 2], [stallsAfterOne, 20, 1], [closesLate, perConnection * 2, perConnection * 2]] as const) {
    servers.push(server);
    await listen(server);
    const began = performance.now();
    assert.equal(await warmUp(machineAt(server), image, requests, 200), expected);
    // One timeout's worth (200 ms) plus scheduling; 20 of them would be 4 s.
    assert.ok(performance.now() - began < 2000, `bounded by one request timeout, took ${Math.round(performance.now() - began)} ms`);
  }
});

test("no port to warm, or no requests asked: nothing is sent", async () => {
  const { server, seen } = await appServer();
  assert.equal(await warmUp(machineAt(server), image, 0), 0);
  assert.equal(await warmUp({ ports: [] }, image, 8), 0);
  assert.equal(seen.length, 0);
});
