import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { describe, test } from "node:test";
import { CLIENT_SERVERS } from "./proxy-server.ts";
import { closedAfterSuite, FakeRoutes, send, startBackend, startProxy, type TestBackend, type TestProxy, until } from "./test-support.ts";

/** A raw client connection to the proxy, collecting what it answers. */
function rawClient(port: number): { socket: Socket; text: () => string; closed: () => boolean } {
  const socket = connect(port, "127.0.0.1");
  let text = "";
  let closed = false;
  socket.setEncoding("latin1");
  socket.on("data", (d: string) => (text += d));
  socket.on("error", () => undefined);
  socket.on("close", () => (closed = true));
  return { socket, text: () => text, closed: () => closed };
}

/** What reaches machines and clients through the proxy's client side: what a hostile client can and cannot do. */
describe("proxy client side", () => {
  const { backend, proxyFor } = closedAfterSuite();

  test("a request smuggled behind Content-Length and Transfer-Encoding never reaches a machine: 400, connection closed", async () => {
    const a = await backend("a");
    const routes = new FakeRoutes();
    routes.set("a", [a.url]);
    const { port, log } = await proxyFor(routes);
    const c = rawClient(port);
    c.socket.write(
      "POST / HTTP/1.1\r\nHost: a.localhost\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a.localhost\r\n\r\n",
    );
    await until(c.closed, 3000, "the proxy to close the connection");
    assert.match(c.text(), /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(c.text(), /"code":"BadRequest".*both Content-Length and Transfer-Encoding/);
    assert.equal(a.requests.length, 0);
    assert.equal(log.length, 0);
  });

  test("pipelined requests are routed each by its own Host and answered in order", async () => {
    const a = await backend("a", (_req, res) => setTimeout(() => res.end("from-a"), 50));
    const b = await backend("b", (_req, res) => res.end("from-b"));
    const routes = new FakeRoutes();
    routes.set("a", [a.url]);
    routes.set("b", [b.url]);
    const { port } = await proxyFor(routes);
    const c = rawClient(port);
    c.socket.write("GET /1 HTTP/1.1\r\nHost: a.localhost\r\n\r\nGET /2 HTTP/1.1\r\nHost: b.localhost\r\n\r\nGET /3 HTTP/1.1\r\nHost: a.localhost\r\n\r\n");
    await until(() => (c.text().match(/from-[ab]/g) ?? []).length === 3, 5000, "three answers");
    const bodies = [...c.text().matchAll(/from-[ab]/g)].map((m) => m[0]);
    assert.deepEqual(bodies, ["from-a", "from-b", "from-a"]);
    assert.deepEqual(a.requests.map((r) => r.url), ["/1", "/3"]);
    assert.deepEqual(b.requests.map((r) => r.url), ["/2"]);
  });

  test("Expect: 100-continue is answered once a machine takes the request; the body then streams to it", async () => {
    const a = await backend("a", (_req, res, body) => res.end(`got ${body}`));
    const routes = new FakeRoutes();
    routes.set("a", []); // no machine yet: held, and no 100 Continue while held
    const { port, demand } = await proxyFor(routes);
    const c = rawClient(port);
    c.socket.write("PUT /up HTTP/1.1\r\nHost: a.localhost\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    await until(() => demand.at(-1)?.waiting === 1, 3000, "the hold");
    assert.equal(c.text(), "", "no 100 Continue while no machine can take the body");
    routes.set("a", [a.url]);
    await until(() => c.text().includes("HTTP/1.1 100 Continue\r\n\r\n"), 3000, "100 Continue");
    c.socket.write("hello");
    await until(() => c.text().includes("got hello"), 3000, "the answer");
    assert.equal(a.requests[0]?.headers.expect, undefined, "Expect is hop-by-hop: the proxy answered it");
  });

  test("a chunked body streams to the machine as it arrives", async () => {
    let firstPart = "";
    const a = await backend("a");
    a.server.removeAllListeners("request");
    a.server.on("request", (req, res) => {
      req.once("data", (chunk: Buffer) => (firstPart = chunk.toString()));
      req.resume();
      req.on("end", () => res.end("done"));
    });
    const routes = new FakeRoutes();
    routes.set("a", [a.url]);
    const { port } = await proxyFor(routes);
    const c = rawClient(port);
    c.socket.write("POST /s HTTP/1.1\r\nHost: a.localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n");
    await until(() => firstPart === "first", 3000, "the first chunk at the machine before the body ends");
    c.socket.write("6\r\nsecond\r\n0\r\n\r\n");
    await until(() => c.text().includes("done"), 3000, "the answer");
  });

  test("answers the proxy's own errors for bad requests in its JSON shape, with the status that says why", async () => {
    const { port } = await proxyFor(new FakeRoutes());
    const cases: [string, number, string][] = [
      [`GET / HTTP/1.1\r\nHost: a\r\nX: ${"a".repeat(17_000)}\r\n\r\n`, 431, "RequestHeaderFieldsTooLarge"],
      ["GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HttpVersionNotSupported"],
      ["GET / HTTP/1.1\r\nHost: a\r\nExpect: tea\r\n\r\n", 417, "ExpectationFailed"],
      ["GET http://evil.test/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "BadRequest"],
    ];
    for (const [request, status, code] of cases) {
      const c = rawClient(port);
      c.socket.write(request);
      await until(c.closed, 3000, `the answer to ${JSON.stringify(request.slice(0, 30))}`);
      assert.match(c.text(), new RegExp(`^HTTP/1\\.1 ${status} `));
      assert.match(c.text(), new RegExp(`"code":"${code}"`));
      assert.match(c.text(), /X-Request-Id: \S+/);
    }
  });

  for (const clientServer of CLIENT_SERVERS) {
    test(`clientServer ${clientServer}: serves a request with its body and keeps the connection alive`, async () => {
      const a = await backend("a");
      const routes = new FakeRoutes();
      routes.set("a", [a.url]);
      const { port } = await proxyFor(routes, { clientServer });
      const reply = await send(port, "a.localhost", "/x", { method: "POST", body: "payload" });
      assert.equal(reply.status, 200);
      assert.equal(reply.json<{ body: string }>().body, "payload");
      const c = rawClient(port);
      c.socket.write("GET /1 HTTP/1.1\r\nHost: a.localhost\r\n\r\n");
      await until(() => c.text().includes('"url":"/1"'), 3000, "the first answer");
      c.socket.write("GET /2 HTTP/1.1\r\nHost: a.localhost\r\n\r\n");
      await until(() => c.text().includes('"url":"/2"'), 3000, "the second answer on the same connection");
      assert.equal(c.closed(), false);
      c.socket.destroy();
    });
  }
});
