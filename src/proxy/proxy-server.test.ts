import assert from "node:assert/strict";
import { once } from "node:events";
import { type IncomingMessage, request } from "node:http";
import { connect, createServer as createTcpServer, type Socket } from "node:net";
import { PassThrough } from "node:stream";
import { describe, test } from "node:test";
import { metricsRegistry } from "../shared/metrics.ts";
import { closedAfterSuite, FakeRoutes, refusedUrl, send, startBackend, startProxy, type TestBackend, type TestProxy, until } from "./test-support.ts";
import { directConnector, type UpstreamConnector, type UpstreamTarget } from "./upstream/upstream-connector.ts";
import { classifyFailure, UpstreamTimeout } from "./upstream/upstream-errors.ts";

describe("proxy server", () => {
  const { backend, proxyFor, cleanup } = closedAfterSuite();

  test("routes by spec host (case and port ignored) and by <service>.localhost; unknown hosts get a 404 JSON error", async () => {
    const web = await backend("web");
    const api = await backend("api");
    const routes = new FakeRoutes();
    routes.set("web", [web.url], { hosts: ["www.example.com"] });
    routes.set("api", [api.url]);
    const { port, log } = await proxyFor(routes);

    assert.equal((await send(port, "WWW.Example.com:8080", "/a")).json().backend, "web");
    assert.equal((await send(port, "web.localhost", "/b")).json().backend, "web");
    assert.equal((await send(port, "api.localhost:80", "/c?x=1")).json().backend, "api");
    assert.equal(api.requests[0]?.url, "/c?x=1");

    const missing = await send(port, "nope.example.com", "/");
    assert.equal(missing.status, 404);
    assert.match(String(missing.headers["content-type"]), /application\/json/);
    const body = missing.json<{ error: { code: string; message: string } }>();
    assert.equal(body.error.code, "NoRoute");
    assert.match(body.error.message, /nope\.example\.com/);
    assert.ok(missing.headers["x-request-id"]);

    assert.deepEqual(log.map((e) => [e.host, e.status, e.service]), [
      ["WWW.Example.com:8080", 200, "web"],
      ["web.localhost", 200, "web"],
      ["api.localhost:80", 200, "api"],
      ["nope.example.com", 404, undefined],
    ]);
  });

  test("balances to the backend with the fewest outstanding requests; ties go round-robin", async () => {
    const fast1 = await backend("fast1");
    const fast2 = await backend("fast2");
    const routes = new FakeRoutes();
    routes.set("rr", [fast1.url, fast2.url]);
    const { port } = await proxyFor(routes);
    for (let i = 0; i < 10; i++) await send(port, "rr.localhost");
    assert.deepEqual([fast1.requests.length, fast2.requests.length], [5, 5]);

    // The slow backend answers only once every request has been sent, however slow the host is.
    let answerSlow = () => {};
    const slowMayAnswer = new Promise<void>((resolve) => (answerSlow = resolve));
    const slow = await backend("slow", (_req, res) => void slowMayAnswer.then(() => res.end("slow")));
    const fast = await backend("fast");
    routes.set("lb", [slow.url, fast.url]);
    const replies: Promise<unknown>[] = [];
    for (let i = 0; i < 12; i++) {
      const fastBefore = fast.requests.length;
      const reply = send(port, "lb.localhost");
      replies.push(reply);
      // The next request goes once this one has reached a backend and, if that was the fast
      // one, been answered: the slow backend is then the only one with a request outstanding.
      await until(() => slow.requests.length + fast.requests.length === i + 1, 2000, `request ${i} to reach a backend`);
      if (fast.requests.length > fastBefore) await reply;
    }
    answerSlow();
    await Promise.all(replies);
    assert.ok(slow.requests.length <= 2, `the slow backend got ${slow.requests.length} of 12`);
    assert.equal(slow.requests.length + fast.requests.length, 12);
  });

  test("retries a GET on a refused connection on another backend; the client sees no error", async () => {
    const live = await backend("live");
    const routes = new FakeRoutes();
    routes.set("retry", [await refusedUrl(), await refusedUrl(), live.url]);
    const { port, log } = await proxyFor(routes);
    const before = await errorCount("retry", "refused");
    for (let i = 0; i < 4; i++) {
      const reply = await send(port, "retry.localhost", `/r${i}`);
      assert.equal(reply.status, 200);
      assert.equal(reply.json().backend, "live");
    }
    assert.equal(live.requests.length, 4);
    assert.ok(log.some((e) => e.attempts > 1), "some request needed a second attempt");
    assert.ok((await errorCount("retry", "refused")) > before);
    // Refusing backends are marked unhealthy: later requests go straight to the live one.
    assert.equal(log.at(-1)?.attempts, 1);
  });

  test("never retries a POST: its backend refusing is a 502 with a clear message", async () => {
    const routes = new FakeRoutes();
    routes.set("post", [await refusedUrl()]);
    const { port, log } = await proxyFor(routes);
    const reply = await send(port, "post.localhost", "/submit", { method: "POST", body: "data", headers: { "content-type": "text/plain" } });
    assert.equal(reply.status, 502);
    const { error } = reply.json<{ error: { code: string; message: string } }>();
    assert.equal(error.code, "UpstreamUnreachable");
    assert.match(error.message, /refused the connection \(ECONNREFUSED\)/);
    assert.equal(log.at(-1)?.attempts, 1);
  });

  test("a GET whose only backend refuses is held (not a 502) until a working backend appears", async () => {
    const routes = new FakeRoutes();
    routes.set("flaky", [await refusedUrl()]);
    const { port, log, demand } = await proxyFor(routes);
    const reply = send(port, "flaky.localhost", "/x");
    // The refusal has happened once the request is held (demand says so); only then a backend appears.
    await until(() => demand.some((d) => d.service === "flaky" && d.waiting === 1), 2000, "the refused GET to be held");
    const live = await backend("live");
    routes.set("flaky", [live.url]);
    assert.equal((await reply).status, 200);
    assert.equal(log.at(-1)?.attempts, 2);
    assert.ok((log.at(-1)?.heldMs ?? 0) > 0);
  });

  test("holds requests while the route is empty, reports demand, and serves them all once a backend is ready", async () => {
    const routes = new FakeRoutes();
    routes.set("cold", [], { minZero: true });
    const { port, log, demand, proxy } = await proxyFor(routes);
    const replies = Array.from({ length: 5 }, (_, i) => send(port, "cold.localhost", `/held${i}`));
    await until(() => demand.at(-1)?.waiting === 5, 2000, "5 held requests");
    assert.equal(demand[0]?.service, "cold");
    assert.equal(demand[0]?.waiting, 1, "demand is reported as soon as a hold starts");
    assert.deepEqual(proxy.proxyLoad().cold, { inFlight: 0, waiting: 5, backends: 0 });
    assert.match(await metricsRegistry.metrics(), /pith_proxy_held_requests\{service="cold"\} 5/);

    const b = await backend("b");
    routes.set("cold", [b.url], { minZero: true });
    // Dispatched before the release is reported: their connections are on their way first.
    assert.deepEqual(demand.at(-1), { service: "cold", inFlight: 5, waiting: 0 }, "the release's report counts them in flight");
    const all = await Promise.all(replies);
    assert.deepEqual(all.map((r) => r.status), [200, 200, 200, 200, 200]);
    assert.equal(b.requests.length, 5);
    assert.equal(demand.at(-1)?.waiting, 0);
    assert.ok(log.every((e) => e.heldMs > 0 && e.attempts === 1));
    assert.deepEqual(proxy.proxyLoad().cold, { inFlight: 0, waiting: 0, backends: 1 });
  });

  test("a hold is bounded: 503 with Retry-After and a clear JSON message", async () => {
    const routes = new FakeRoutes();
    routes.set("never", [], { minZero: true });
    const { port, log } = await proxyFor(routes, { holdTimeoutMs: 100 });
    const started = Date.now();
    const reply = await send(port, "never.localhost", "/", { method: "POST", body: "x" });
    assert.ok(Date.now() - started >= 90);
    assert.equal(reply.status, 503);
    assert.equal(reply.headers["retry-after"], "5");
    const { error } = reply.json<{ error: { code: string; message: string } }>();
    assert.equal(error.code, "NoReadyMachine");
    assert.match(error.message, /service never has no ready machine/);
    assert.equal(log.at(-1)?.status, 503);
  });

  test("sets X-Forwarded-For/-Proto/-Host and X-Request-Id upstream and on the response; strips hop-by-hop headers", async () => {
    const b = await backend("h", (_req, res) => {
      res.setHeader("x-app", "1");
      res.setHeader("keep-alive", "timeout=5");
      res.end("ok");
    });
    const routes = new FakeRoutes();
    routes.set("hdr", [b.url], { hosts: ["hdr.example"] });
    const { port } = await proxyFor(routes);

    const reply = await send(port, "hdr.example", "/", {
      headers: { "x-forwarded-for": "10.0.0.1", "x-request-id": "req-123", connection: "keep-alive, x-secret", "x-secret": "s", "proxy-authorization": "p", "x-kept": "k" },
    });
    assert.equal(reply.headers["x-request-id"], "req-123");
    assert.equal(reply.headers["x-app"], "1");
    const seen = b.requests[0]?.headers ?? {};
    assert.equal(seen["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    assert.equal(seen["x-forwarded-proto"], "http");
    assert.equal(seen["x-forwarded-host"], "hdr.example");
    assert.equal(seen.host, "hdr.example");
    assert.equal(seen["x-request-id"], "req-123");
    assert.equal(seen["x-kept"], "k");
    assert.equal(seen["x-secret"], undefined);
    assert.equal(seen["proxy-authorization"], undefined);

    const generated = await send(port, "hdr.example");
    const id = generated.headers["x-request-id"];
    assert.match(String(id), /^[A-Za-z0-9_-]{12}$/);
    assert.equal(b.requests[1]?.headers["x-request-id"], id);
    assert.equal(b.requests[1]?.headers["x-forwarded-for"], "127.0.0.1");
  });

  test("streams request and response bodies both ways", async () => {
    const b = await backend("echo", (_req, res, body) => res.end(body.toUpperCase()));
    const routes = new FakeRoutes();
    routes.set("body", [b.url]);
    const { port } = await proxyFor(routes);
    const big = "abc".repeat(100_000);
    const reply = await send(port, "body.localhost", "/", { method: "PUT", body: big });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, big.toUpperCase());
  });

  test("large responses to clients that stop reading arrive intact (reads share one buffer; the paused one resumes)", async () => {
    // Each body is its own pattern, so a byte from another response (or a later read) shows.
    const size = 24 * 1024 * 1024; // more than loopback's socket buffers hold, so the proxy must hold (and pause)
    const pattern = (seed: number): Buffer => {
      const bytes = Buffer.allocUnsafe(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed * 7 + (i >> 12)) & 0xff;
      return bytes;
    };
    const bodies = [pattern(1), pattern(2), pattern(3)];
    const b = await backend("big", (req, res) => {
      const body = bodies[Number(req.url?.slice(1))] as Buffer;
      if (req.url === "/0") res.writeHead(200, { "content-length": size }).end(body);
      else {
        res.writeHead(200); // chunked, in pieces of odd sizes
        for (let at = 0; at < size; at += 70_001) res.write(body.subarray(at, at + 70_001));
        res.end();
      }
    });
    const routes = new FakeRoutes();
    routes.set("big", [b.url]);
    const { port } = await proxyFor(routes);
    const download = (index: number, paused: Promise<void> | undefined): Promise<Buffer> =>
      new Promise((resolve, reject) => {
        const socket = connect(port, "127.0.0.1");
        const chunks: Buffer[] = [];
        socket.on("data", (chunk: Buffer) => chunks.push(chunk));
        socket.on("error", reject);
        socket.on("end", () => resolve(Buffer.concat(chunks)));
        socket.write(`GET /${index} HTTP/1.1\r\nHost: big.localhost\r\nConnection: close\r\n\r\n`);
        if (paused) {
          socket.pause();
          void paused.then(() => socket.resume());
        }
      });
    const bodyOf = (response: Buffer): Buffer => {
      const end = response.indexOf("\r\n\r\n");
      const head = response.toString("latin1", 0, end);
      const rest = response.subarray(end + 4);
      if (!/transfer-encoding: chunked/i.test(head)) return rest;
      const parts: Buffer[] = [];
      for (let at = 0; ; ) {
        const lineEnd = rest.indexOf("\r\n", at);
        const n = Number.parseInt(rest.toString("latin1", at, lineEnd), 16);
        if (n === 0) return Buffer.concat(parts);
        parts.push(rest.subarray(lineEnd + 2, lineEnd + 2 + n));
        at = lineEnd + 2 + n + 2;
      }
    };
    // The first two clients read nothing until the third has its whole body: meanwhile the proxy
    // must stop reading their machine connections and keep what it holds intact.
    let third!: Promise<Buffer>;
    const thirdDone = new Promise<void>((resolve) => setImmediate(() => void third.then(() => resolve(), () => resolve())));
    const first = download(0, thirdDone);
    const second = download(1, thirdDone);
    third = download(2, undefined);
    const [a, c, d] = await Promise.all([first, second, third]);
    for (const [i, response] of [a, c, d].entries()) {
      const body = bodyOf(response);
      assert.equal(body.length, size, `response ${i}: length`);
      assert.ok(body.equals(bodies[i] as Buffer), `response ${i}: bytes differ`);
    }
  });

  test("a machine that does not answer within upstreamTimeoutMs is a 504", async () => {
    const b = await backend("mute", () => undefined);
    const routes = new FakeRoutes();
    routes.set("mute", [b.url]);
    const { port } = await proxyFor(routes, { upstreamTimeoutMs: 100 });
    const reply = await send(port, "mute.localhost");
    assert.equal(reply.status, 504);
    assert.equal(reply.json<{ error: { code: string } }>().error.code, "UpstreamTimeout");
  });

  test("a backend taken out of the route finishes the requests it has", async () => {
    const b = await backend("draining", (_req, res) => setTimeout(() => res.end("done"), 100));
    const routes = new FakeRoutes();
    routes.set("drain", [b.url]);
    const { port } = await proxyFor(routes);
    const reply = send(port, "drain.localhost");
    await until(() => routes.backend(b.url)?.inFlight === 1, 1000, "the request in flight");
    routes.set("drain", []);
    assert.equal((await reply).body, "done");
    assert.equal(routes.backend(b.url)?.inFlight, 0);
  });

  test("proxies a WebSocket-style upgrade and pipes bytes both ways", async () => {
    const b = await backend("ws");
    const upgrades: Record<string, string | string[] | undefined>[] = [];
    b.server.on("upgrade", (req, socket: Socket) => {
      upgrades.push(req.headers);
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n");
      socket.pipe(socket);
    });
    const routes = new FakeRoutes();
    routes.set("ws", [b.url]);
    const { port, log } = await proxyFor(routes);

    const client = connect(port, "127.0.0.1");
    await new Promise((resolve) => client.once("connect", resolve));
    client.write("GET /chat HTTP/1.1\r\nHost: ws.localhost\r\nUpgrade: echo\r\nConnection: Upgrade\r\nX-Request-Id: up-1\r\n\r\n");
    let received = "";
    client.on("data", (chunk: Buffer) => (received += chunk.toString()));
    await until(() => received.includes("\r\n\r\n"), 2000, "the 101 response");
    assert.match(received, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(received, /\r\nX-Request-Id: up-1\r\n/);
    const afterHead = received.length;
    client.write("ping");
    await until(() => received.slice(afterHead) === "ping", 2000, "the echo");

    assert.equal(upgrades[0]?.upgrade, "echo");
    assert.equal(upgrades[0]?.connection, "Upgrade");
    assert.equal(upgrades[0]?.["x-forwarded-for"], "127.0.0.1");
    assert.equal(upgrades[0]?.["x-forwarded-host"], "ws.localhost");
    assert.equal(routes.backend(b.url)?.inFlight, 1, "an open tunnel counts as in flight");

    client.end();
    await until(() => log.some((e) => e.requestId === "up-1"), 2000, "the tunnel's log entry");
    const entry = log.find((e) => e.requestId === "up-1");
    assert.equal(entry?.status, 101);
    assert.equal(entry?.path, "/chat");
    assert.equal(routes.backend(b.url)?.inFlight, 0);
  });

  test("a machine that refuses the upgrade gets nothing more from that client: no raw tunnel past the proxy's headers and log", async () => {
    const seen: string[] = [];
    // A plain HTTP machine: it answers an Upgrade request like any other, and keeps the connection alive.
    const b = await backend("plain", (req, res) => {
      seen.push(`${req.method} ${req.url} xff=${String(req.headers["x-forwarded-for"])}`);
      res.end("no upgrade here");
    });
    const routes = new FakeRoutes();
    routes.set("plain", [b.url]);
    const { port, log } = await proxyFor(routes);
    const client = connect(port, "127.0.0.1");
    let received = "";
    client.on("data", (chunk: Buffer) => (received += chunk.toString()));
    client.on("error", () => undefined);
    const closed = new Promise((resolve) => client.once("close", resolve));
    // The second request rides in the same packet, and a third comes after the answer.
    client.write("GET /ws HTTP/1.1\r\nHost: plain.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /smuggled-1 HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => received.includes("no upgrade here"), 2000, "the machine's answer");
    client.write("GET /smuggled-2 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n");
    await closed;
    assert.match(received, /^HTTP\/1\.1 200 OK\r\n/);
    assert.deepEqual(seen, ["GET /ws xff=127.0.0.1"], "only the upgrade request reached the machine");
    await until(() => log.length > 0, 2000, "the log entry");
    assert.deepEqual(log.map((e) => `${e.path} ${e.status}`), ["/ws 200"]);
  });

  test("an upgrade for an unknown host gets a 404 on the socket", async () => {
    const { port } = await proxyFor(new FakeRoutes());
    const client = connect(port, "127.0.0.1");
    let received = "";
    client.on("data", (chunk: Buffer) => (received += chunk.toString()));
    const closed = new Promise((resolve) => client.once("close", resolve));
    client.write("GET / HTTP/1.1\r\nHost: ghost.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    await closed;
    assert.match(received, /^HTTP\/1\.1 404 Not Found\r\n/);
    assert.match(received, /"code":"NoRoute"/);
  });

  test("a GET whose connection is reset before any response byte is retried; a PUT whose body was sent is not", async () => {
    const resetter = await backend("reset", (req) => req.socket.destroy());
    const live = await backend("live");
    const routes = new FakeRoutes();
    routes.set("rst", [resetter.url, live.url]);
    const { port, log } = await proxyFor(routes);
    for (let i = 0; i < 4; i++) assert.equal((await send(port, "rst.localhost", `/g${i}`)).status, 200);
    assert.ok(resetter.requests.length >= 1, "the resetting backend was tried");
    assert.ok(log.some((e) => e.attempts === 2));
    assert.ok((await errorCount("rst", "reset")) >= 1);

    routes.set("rst", [resetter.url]);
    const put = await send(port, "rst.localhost", "/p", { method: "PUT", body: "payload" });
    assert.equal(put.status, 502);
    assert.match(put.json<{ error: { message: string } }>().error.message, /closed the connection before responding/);
    assert.equal(log.at(-1)?.attempts, 1);
  });

  test("a client that leaves while held or while its machine works is logged as 499 and counted out", async () => {
    const slow = await backend("slow", (_req, res) => setTimeout(() => res.end("late"), 200));
    const routes = new FakeRoutes();
    routes.set("gone", []);
    const { port, log, demand, proxy } = await proxyFor(routes);

    const held = request({ host: "127.0.0.1", port, path: "/held", agent: false, headers: { host: "gone.localhost" } });
    held.on("error", () => undefined);
    held.end();
    await until(() => demand.at(-1)?.waiting === 1, 1000, "the hold");
    held.destroy();
    await until(() => log.length === 1, 1000, "the held request's log entry");
    assert.equal(log[0]?.status, 499);
    assert.equal(demand.at(-1)?.waiting, 0);

    routes.set("gone", [slow.url]);
    const busy = request({ host: "127.0.0.1", port, path: "/busy", agent: false, headers: { host: "gone.localhost" } });
    busy.on("error", () => undefined);
    busy.end();
    await until(() => routes.backend(slow.url)?.inFlight === 1, 1000, "the request at the machine");
    busy.destroy();
    await until(() => log.length === 2, 1000, "the second log entry");
    assert.equal(log[1]?.status, 499);
    assert.equal(routes.backend(slow.url)?.inFlight, 0);
    assert.deepEqual(proxy.proxyLoad().gone, { inFlight: 0, waiting: 0, backends: 1 });
  });

  test("a response cut short by the machine is cut for the client; a client leaving mid-response stops the upstream one", async () => {
    let upstreamClosed = false;
    const streamer = await backend("stream", (req, res) => {
      if (req.url === "/cut") {
        res.writeHead(200, { "content-length": "100" });
        res.write("partial");
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first chunk");
      res.on("close", () => (upstreamClosed = true));
    });
    const routes = new FakeRoutes();
    routes.set("cut", [streamer.url]);
    const { port, log } = await proxyFor(routes);

    await assert.rejects(send(port, "cut.localhost", "/cut"), /aborted|ECONNRESET|socket hang up/);
    await until(() => routes.backend(streamer.url)?.inFlight === 0, 1000, "the cut attempt to end");

    const req = request({ host: "127.0.0.1", port, path: "/stream", agent: false, headers: { host: "cut.localhost" } });
    req.on("error", () => undefined);
    req.end();
    const res = await new Promise<IncomingMessage>((resolve) => req.once("response", resolve));
    res.on("error", () => undefined);
    await new Promise((resolve) => res.once("data", resolve));
    assert.equal(routes.backend(streamer.url)?.inFlight, 1);
    req.destroy();
    await until(() => upstreamClosed, 1000, "the upstream response to be closed");
    await until(() => routes.backend(streamer.url)?.inFlight === 0, 1000, "the attempt to end");
    await until(() => log.length === 2, 1000, "both log entries");
    assert.deepEqual(log.map((e) => e.status), [200, 200]);
  });

  test("every upstream connection, HTTP and upgrade, goes through the connector", async () => {
    const b = await backend("via");
    b.server.on("upgrade", (_req, socket: Socket) => {
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n");
      socket.pipe(socket);
    });
    const routes = new FakeRoutes();
    routes.set("via", [b.url]);
    const targets: UpstreamTarget[] = [];
    const connector: UpstreamConnector = {
      connect: (target) => {
        targets.push(target);
        return directConnector.connect(target);
      },
    };
    const { port } = await proxyFor(routes, { connector });
    assert.equal((await send(port, "via.localhost", "/a")).json().backend, "via");
    const machine = routes.backend(b.url)?.machine;
    assert.deepEqual(targets, [{ machine, hostname: "127.0.0.1", port: Number(new URL(b.url).port) }]);

    const client = connect(port, "127.0.0.1");
    let received = "";
    client.on("data", (chunk: Buffer) => (received += chunk.toString()));
    client.write("GET /ws HTTP/1.1\r\nHost: via.localhost\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n");
    await until(() => received.includes("\r\n\r\n"), 2000, "the 101 response");
    client.destroy();
    assert.equal(targets.length, 2, "the tunnel had its own connection from the connector");
  });

  test("keeps connections to a machine alive: sequential requests share one; a Keep-Alive hint is honoured", async () => {
    const seen = new Set<string>();
    const b = await backend("ka", (req, res) => {
      seen.add(`${req.socket.remotePort}`);
      res.end("ok");
    });
    const routes = new FakeRoutes();
    routes.set("ka", [b.url]);
    const { port } = await proxyFor(routes);
    for (let i = 0; i < 5; i++) assert.equal((await send(port, "ka.localhost")).body, "ok");
    assert.equal(seen.size, 1, "one upstream connection for five requests");

    // "timeout=1" leaves no idle time at all (the proxy keeps a second of margin): a new connection each time.
    const hinted = new Set<string>();
    const h = await backend("hint", (req, res) => {
      hinted.add(`${req.socket.remotePort}`);
      res.setHeader("keep-alive", "timeout=1");
      res.end("ok");
    });
    routes.set("hint", [h.url]);
    for (let i = 0; i < 3; i++) assert.equal((await send(port, "hint.localhost")).body, "ok");
    assert.equal(hinted.size, 3);
  });

  test("a connection the machine closed while idle is not used; a GET that meets one anyway is retried", async () => {
    const b = await backend("closer", (_req, res) => res.end("ok"));
    b.server.keepAliveTimeout = 50;
    const open = new Set<Socket>();
    b.server.on("connection", (socket: Socket) => {
      open.add(socket);
      socket.on("close", () => open.delete(socket));
    });
    const routes = new FakeRoutes();
    routes.set("closer", [b.url]);
    const { port } = await proxyFor(routes);
    for (let i = 0; i < 3; i++) {
      assert.equal((await send(port, "closer.localhost")).body, "ok");
      // The next request comes once the machine has closed the idle connection.
      await Promise.all([...open].map((socket) => once(socket, "close", { signal: AbortSignal.timeout(5000) })));
    }
  });

  test("a chunked request body without Content-Length is forwarded chunked; chunked and close-delimited responses are re-framed", async () => {
    const raw = await rawBackend(cleanup, (request, socket) => {
      if (request.startsWith("POST /close")) socket.end("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close");
      else socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n");
    });
    const routes = new FakeRoutes();
    routes.set("framing", [raw.url]);
    const { port } = await proxyFor(routes);
    const chunked = await sendChunked(port, "framing.localhost", "/chunked", ["hel", "lo"]);
    assert.equal(chunked.status, 200);
    assert.equal(chunked.body, "abcde");
    assert.equal(chunked.headers["x-up"], "1");
    assert.match(raw.requests[0] ?? "", /\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n$/);
    const closed = await send(port, "framing.localhost", "/close", { method: "POST", body: "x" });
    assert.equal(closed.body, "until close");
  });

  test("HEAD, 204 and 304 responses carry no body", async () => {
    const b = await backend("nobody", (req, res) => {
      if (req.url === "/204") res.writeHead(204).end();
      else if (req.url === "/304") res.writeHead(304, { etag: '"x"' }).end();
      else res.writeHead(200, { "content-length": "5" }).end(req.method === "HEAD" ? undefined : "hello");
    });
    const routes = new FakeRoutes();
    routes.set("nobody", [b.url]);
    const { port, log } = await proxyFor(routes);
    const head = await send(port, "nobody.localhost", "/", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], "5");
    assert.equal(head.body, "");
    assert.equal((await send(port, "nobody.localhost", "/204")).status, 204);
    assert.equal((await send(port, "nobody.localhost", "/304")).status, 304);
    assert.equal((await send(port, "nobody.localhost", "/")).body, "hello");
    assert.deepEqual(log.map((e) => e.status), [200, 204, 304, 200]);
  });

  test("a malformed response is a 502, never forwarded", async () => {
    const raw = await rawBackend(cleanup, (request, socket) => {
      if (request.startsWith("GET /smuggle")) socket.end("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
      else socket.end("HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n");
    });
    const routes = new FakeRoutes();
    routes.set("bad", [raw.url]);
    const { port, log } = await proxyFor(routes);
    for (const path of ["/smuggle", "/header"]) {
      const reply = await send(port, "bad.localhost", path);
      assert.equal(reply.status, 502);
      const { error } = reply.json<{ error: { code: string; message: string } }>();
      assert.equal(error.code, "BadUpstreamResponse");
      assert.match(error.message, /Content-Length and Transfer-Encoding|invalid header name/);
    }
    assert.deepEqual(log.map((e) => e.attempts), [1, 1], "a malformed response is not retried");
    assert.ok((await errorCount("bad", "error")) >= 2);
  });

  test("a connector that never connects is a connect timeout, retried elsewhere", async () => {
    const live = await backend("live");
    const stuck = await refusedUrl();
    const routes = new FakeRoutes();
    routes.set("slowconn", [stuck, live.url]);
    const connector: UpstreamConnector = {
      connect: (target) => (target.port === Number(new URL(stuck).port) ? new PassThrough() : directConnector.connect(target)),
    };
    const { port, log } = await proxyFor(routes, { connector, connectTimeoutMs: 50 });
    for (let i = 0; i < 2; i++) assert.equal((await send(port, "slowconn.localhost")).json().backend, "live");
    assert.ok(log.some((e) => e.attempts === 2));
    assert.ok((await errorCount("slowconn", "connect_timeout")) >= 1);
  });

  test("at maxSocketsPerBackend, requests queue for a connection instead of opening more", async () => {
    const ports = new Set<number>();
    const b = await backend("narrow", (req, res) => {
      ports.add(req.socket.remotePort ?? 0);
      setTimeout(() => res.end("ok"), 20);
    });
    const routes = new FakeRoutes();
    routes.set("narrow", [b.url]);
    const { port } = await proxyFor(routes, { maxSocketsPerBackend: 2 });
    const replies = await Promise.all(Array.from({ length: 8 }, () => send(port, "narrow.localhost")));
    assert.ok(replies.every((r) => r.body === "ok"));
    assert.equal(ports.size, 2);
  });

  test("a retired backend's idle connections close; a busy one closes when its request ends", async () => {
    const open = new Set<Socket>();
    const b = await backend("retiring", (req, res) => setTimeout(() => res.end("done"), req.url === "/slow" ? 100 : 0));
    b.server.on("connection", (socket: Socket) => {
      open.add(socket);
      socket.on("close", () => open.delete(socket));
    });
    const routes = new FakeRoutes();
    routes.set("retiring", [b.url]);
    const { port } = await proxyFor(routes);
    await Promise.all([send(port, "retiring.localhost", "/"), send(port, "retiring.localhost", "/")]);
    const slow = send(port, "retiring.localhost", "/slow");
    await until(() => routes.backend(b.url)?.inFlight === 1, 1000, "the slow request");
    assert.equal(open.size, 2, "one idle and one busy connection");
    routes.set("retiring", []);
    await until(() => open.size === 1, 1000, "the idle connection to close");
    assert.equal((await slow).body, "done");
    await until(() => open.size === 0, 1000, "the busy connection to close after its response");
  });

  test("classifies upstream failures", () => {
    const err = (code: string) => Object.assign(new Error(code), { code });
    assert.equal(classifyFailure(err("ECONNREFUSED"), false), "refused");
    assert.equal(classifyFailure(err("EHOSTUNREACH"), false), "connect_error");
    assert.equal(classifyFailure(new UpstreamTimeout("ECONNECTTIMEOUT", "x"), false), "connect_timeout");
    assert.equal(classifyFailure(err("ECONNRESET"), true), "reset");
    assert.equal(classifyFailure(err("EPIPE"), true), "reset");
    assert.equal(classifyFailure(new UpstreamTimeout("EUPSTREAMTIMEOUT", "x"), true), "timeout");
    assert.equal(classifyFailure(err("HPE_INVALID_CONSTANT"), true), "error");
  });

  test("exports metrics on the shared registry and logs one entry per request", async () => {
    const b = await backend("m");
    const routes = new FakeRoutes();
    routes.set("metered", [b.url]);
    const { port, log } = await proxyFor(routes);
    const unroutedBefore = await requestCount("_unrouted", "404");
    for (let i = 0; i < 3; i++) await send(port, "metered.localhost", `/p${i}`);
    await send(port, "unknown.metered");
    assert.equal(log.length, 4);
    assert.deepEqual(log.map((e) => e.path), ["/p0", "/p1", "/p2", "/"]);
    for (const e of log.slice(0, 3)) {
      assert.equal(e.service, "metered");
      assert.equal(e.machine, routes.backend(b.url)?.machine);
      assert.equal(e.method, "GET");
      assert.equal(e.status, 200);
      assert.equal(e.attempts, 1);
      assert.equal(e.heldMs, 0);
      assert.ok(e.durationMs >= 0);
      assert.ok(!Number.isNaN(Date.parse(e.time)));
      assert.ok(e.requestId);
    }
    const text = await metricsRegistry.metrics();
    assert.match(text, /pith_proxy_requests_total\{service="metered",status="200"\} 3/);
    assert.equal(await requestCount("_unrouted", "404"), unroutedBefore + 1);
    assert.match(text, /pith_proxy_request_duration_seconds_count\{service="metered"\} 3/);
    assert.match(text, /pith_proxy_in_flight\{service="metered"\} 0/);
    assert.match(text, /# TYPE pith_proxy_upstream_errors_total counter/);
    assert.match(text, /# TYPE pith_proxy_held_requests gauge/);
  });
});

async function errorCount(service: string, kind: string): Promise<number> {
  const text = await metricsRegistry.metrics();
  const match = new RegExp(`pith_proxy_upstream_errors_total\\{service="${service}",kind="${kind}"\\} (\\d+)`).exec(text);
  return Number(match?.[1] ?? 0);
}

async function requestCount(service: string, status: string): Promise<number> {
  const text = await metricsRegistry.metrics();
  const match = new RegExp(`pith_proxy_requests_total\\{service="${service}",status="${status}"\\} (\\d+)`).exec(text);
  return Number(match?.[1] ?? 0);
}

/** A backend speaking raw bytes: `answer` gets each request's bytes (head and body, as far as read) and the socket. */
async function rawBackend(cleanup: (() => Promise<void>)[], answer: (request: string, socket: Socket) => void): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    let buffered = "";
    socket.on("error", () => undefined);
    socket.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("latin1");
      const headEnd = buffered.indexOf("\r\n\r\n");
      if (headEnd < 0) return;
      const head = buffered.slice(0, headEnd);
      const chunked = /\r\ntransfer-encoding: chunked/i.test(head);
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
      const complete = chunked ? buffered.endsWith("\r\n0\r\n\r\n") : buffered.length >= headEnd + 4 + length;
      if (!complete) return;
      requests.push(buffered);
      const request = buffered;
      buffered = "";
      answer(request, socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  cleanup.push(
    () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  );
  return { url: `http://127.0.0.1:${port}/`, requests };
}

/** A POST whose body goes out in chunks, with no Content-Length (so the proxy sees Transfer-Encoding: chunked). */
function sendChunked(port: number, host: string, path: string, pieces: string[]): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method: "POST", agent: false, headers: { host } }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    for (const piece of pieces) req.write(piece);
    req.end();
  });
}
