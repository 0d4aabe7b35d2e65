import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, before, describe, test, type TestContext } from "node:test";
import fc from "fast-check";
import { until } from "../test-support.ts";
import { MAX_PIPELINED_BYTES } from "./client-connection.ts";
import { type ClientLimits, type HttpHandlers, HttpServer, type IncomingRequest, type OutgoingResponse } from "./http-server.ts";

/** A connection to the server, reading everything it answers. */
class RawClient {
  readonly socket: Socket;
  text = "";
  closed = false;

  constructor(port: number) {
    this.socket = connect(port, "127.0.0.1");
    this.socket.setEncoding("latin1");
    this.socket.on("data", (data: string) => (this.text += data));
    this.socket.on("error", () => undefined);
    this.socket.on("close", () => (this.closed = true));
  }

  send(text: string): this {
    this.socket.write(Buffer.from(text, "latin1"));
    return this;
  }

  async waitFor(pattern: RegExp, timeoutMs = 3000): Promise<string> {
    await until(() => pattern.test(this.text), timeoutMs, `${pattern} in ${JSON.stringify(this.text.slice(0, 300))}`);
    return this.text;
  }

  async waitClosed(timeoutMs = 3000): Promise<void> {
    await until(() => this.closed, timeoutMs, "the server to close the connection");
  }

  /** Each response's status line, in order. */
  statuses(): string[] {
    return [...this.text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1] as string);
  }
}

interface Seen {
  method: string;
  target: string;
  body: string;
}

/** A server whose handler echoes the request (body included) once it has read it all, or answers as `behave` says. */
async function startServer(limits: Partial<ClientLimits> = {}, behave?: (req: IncomingRequest, res: OutgoingResponse) => boolean) {
  const seen: Seen[] = [];
  const errors: { status: number; message: string }[] = [];
  const upgrades: { req: IncomingRequest; socket: Socket; head: Buffer }[] = [];
  const handlers: HttpHandlers = {
    onRequest(req, res) {
      const entry: Seen = { method: req.method, target: req.target, body: "" };
      seen.push(entry);
      if (behave?.(req, res)) return;
      req.readBody(
        (chunk) => (entry.body += chunk.toString("latin1")),
        () => {
          const text = `${req.method} ${req.target} ${entry.body}`;
          res.writeHead(200, undefined, ["Content-Length", String(Buffer.byteLength(text))]);
          res.end(text);
        },
      );
    },
    onUpgrade(req, socket, head) {
      upgrades.push({ req, socket, head });
    },
    onClientError(socket, status, message) {
      errors.push({ status, message });
      socket.end(`HTTP/1.1 ${status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    },
  };
  const server = new HttpServer(handlers, limits);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const clients: RawClient[] = [];
  return {
    server,
    port,
    seen,
    errors,
    upgrades,
    client(): RawClient {
      const c = new RawClient(port);
      clients.push(c);
      return c;
    },
    close(): Promise<void> {
      for (const c of clients) c.socket.destroy();
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

describe("Pith's HTTP server (the proxy's client side)", () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    s = await startServer();
  });
  after(() => s.close());

  test("pipelined requests are answered in order, each once the one before it is answered", async () => {
    const c = s.client().send(
      "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\none" +
        "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n" +
        "POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n",
    );
    const text = await c.waitFor(/POST \/3 three/);
    assert.ok(text.indexOf("POST /1 one") < text.indexOf("GET /2 ") && text.indexOf("GET /2 ") < text.indexOf("POST /3 three"), text);
    assert.deepEqual(c.statuses(), ["200", "200", "200"]);
    assert.match(text, /Keep-Alive: timeout=5/);
    assert.match(text, /\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n/);
  });

  test("a smuggling attempt (Content-Length with Transfer-Encoding) is a 400; nothing after it is read as a request", async () => {
    const before = s.seen.length;
    const c = s.client().send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitClosed();
    assert.deepEqual(c.statuses(), ["400"]);
    assert.equal(s.seen.length, before, "no request reached the handler");
    assert.match(s.errors.at(-1)?.message ?? "", /both Content-Length and Transfer-Encoding/);
  });

  test("a refused request after a good one on the same connection: the good one is answered, then the 400", async () => {
    const c = s.client().send("GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /bad HTTP/1.1\r\nHost: a\r\nX: a\nY: b\r\n\r\n");
    await c.waitClosed();
    assert.deepEqual(c.statuses(), ["200", "400"]);
  });

  test("an oversized head is a 431, before it is all sent", async () => {
    const c = s.client().send(`GET / HTTP/1.1\r\nHost: a\r\nX: ${"a".repeat(20_000)}`);
    await c.waitClosed();
    assert.deepEqual(c.statuses(), ["431"]);
  });

  test("Expect: 100-continue: 100 Continue only once the handler reads the body, then the answer", async () => {
    const c = s.client().send("PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    await c.waitFor(/HTTP\/1\.1 100 Continue\r\n\r\n/);
    c.send("body");
    await c.waitFor(/PUT \/e body/);
    assert.deepEqual(c.statuses(), ["100", "200"]);
  });

  test("HTTP/1.0: closed after the answer unless it asked for keep-alive; a body without a length ends with the close", async () => {
    const plain = s.client().send("GET /10 HTTP/1.0\r\n\r\n");
    await plain.waitClosed();
    assert.match(plain.text, /^HTTP\/1\.1 200 OK\r\n[^]*Connection: close\r\n/);
    const kept = s.client().send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    await kept.waitFor(/GET \/a $/);
    assert.match(kept.text, /Connection: keep-alive\r\n/);
    kept.send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    await kept.waitFor(/GET \/b $/);
    assert.equal(kept.closed, false);
  });

  test("an upgrade hands over the socket with the bytes read after its head", async () => {
    const c = s.client().send("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nfirst-frame");
    await until(() => s.upgrades.length === 1, 3000, "the upgrade");
    const { req, socket, head } = s.upgrades[0] as { req: IncomingRequest; socket: Socket; head: Buffer };
    assert.equal(req.target, "/ws");
    let tunnelled = head.toString("latin1");
    socket.on("data", (d: Buffer) => (tunnelled += d.toString("latin1")));
    socket.resume(); // handed over paused: nothing is emitted before its new owner reads (pipe resumes it)
    c.send("-more");
    await until(() => tunnelled === "first-frame-more", 3000, "the tunnel's bytes");
    socket.end("HTTP/1.1 101 Switching Protocols\r\n\r\n");
    await c.waitFor(/101/);
  });
});

describe("Pith's HTTP server: time limits and bounds", () => {
  test("slowloris: a head not complete within headTimeoutMs is a 408 and the connection closes; a silent one just closes", async (t) => {
    const s = await startServer({ headTimeoutMs: 150, keepAliveTimeoutMs: 5000 });
    t.after(() => s.close());
    const slow = s.client().send("GET / HTTP/1.1\r\nHost: a\r\n");
    const drip = setInterval(() => slow.send("X: y\r\n"), 30);
    t.after(() => clearInterval(drip));
    await slow.waitClosed(3000);
    assert.deepEqual(slow.statuses(), ["408"]);
    const silent = s.client();
    await silent.waitClosed(3000);
    assert.equal(silent.text, "");
  });

  test("a client that never sends its FIN after a refusal or a Connection: close does not keep the socket", async (t) => {
    const s = await startServer({ keepAliveTimeoutMs: 100 });
    t.after(() => s.close());
    for (const request of ["GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"]) {
      const c = s.client();
      c.socket.allowHalfOpen = true; // reads our FIN and keeps its own side open, as a hostile client would
      c.send(request);
      await c.waitFor(/^HTTP\/1\.1 (400|200) /);
      await until(() => c.socket.readableEnded, 3000, "the server's FIN");
      const open = (): Promise<number> => new Promise((resolve, reject) => s.server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
      const deadline = Date.now() + 3000;
      while ((await open()) > 0) {
        assert.ok(Date.now() < deadline, "the server let go of the half-open socket");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      c.socket.destroy();
    }
  });

  test("an idle kept-alive connection closes after keepAliveTimeoutMs", async (t) => {
    const s = await startServer({ keepAliveTimeoutMs: 100 });
    t.after(() => s.close());
    const c = s.client().send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await c.waitFor(/GET \/ $/);
    const answered = Date.now();
    await c.waitClosed(3000);
    assert.ok(Date.now() - answered >= 80, "not before the keep-alive timeout");
  });

  test("a body that stops arriving ends the connection after clientTimeoutMs; the response sees the close", async (t) => {
    let closed = false;
    const s = await startServer({ clientTimeoutMs: 100 }, (req, res) => {
      res.once("close", () => (closed = true));
      req.readBody(() => undefined, () => undefined);
      return true;
    });
    t.after(() => s.close());
    const c = s.client().send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npart");
    await c.waitClosed(3000);
    assert.equal(closed, true);
  });

  test("pipelined requests are read ahead only up to a bound: a flood waits in the client's socket, not in memory", async (t) => {
    let answer: (() => void) | undefined;
    const s = await startServer({}, (_req, res) => {
      answer = () => res.writeHead(200, undefined, ["Content-Length", "0"]).end();
      return true;
    });
    t.after(() => s.close());
    const c = s.client();
    const one = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    const flood = one.repeat(Math.ceil((8 * MAX_PIPELINED_BYTES) / one.length));
    let accepted = true;
    const sent = new Promise<void>((resolve) => {
      accepted = c.socket.write(flood, "latin1", () => resolve());
    });
    await until(() => s.seen.length === 1, 3000, "the first request");
    await until(() => c.socket.writableLength > 0 || !accepted, 3000, "the client's writes to back up");
    assert.equal(s.seen.length, 1, "the second request waits for the first answer");
    answer?.();
    await until(() => s.seen.length === 2, 3000, "the second request, once the first is answered");
    void sent;
  });

  /** A server that leaves each request's body unread (a held request); `held()` is the last request. */
  async function holdingServer(t: TestContext) {
    let req: IncomingRequest | undefined;
    const s = await startServer({}, (r) => {
      req = r;
      return true;
    });
    t.after(() => s.close());
    return { s, held: () => req };
  }

  /** What the client still holds once the server has stopped reading: its backlog unchanged for 300 ms. */
  async function backlogOnceReadingStops(socket: Socket): Promise<number> {
    let backlog = -1;
    let since = Date.now();
    await until(() => {
      if (socket.writableLength !== backlog) [backlog, since] = [socket.writableLength, Date.now()];
      return Date.now() - since >= 300;
    }, 20_000, "the server to stop reading");
    return backlog;
  }

  test("a body nobody reads yet (a held request) is read only up to a bound: the rest waits in the client's socket", async (t) => {
    const { s, held } = await holdingServer(t);
    const c = s.client();
    const body = Buffer.alloc(16 * 1024 * 1024, 97);
    c.send(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`);
    c.socket.write(body);
    await until(() => held() !== undefined, 3000, "the request");
    const backlog = await backlogOnceReadingStops(c.socket);
    assert.ok(backlog > 8 * 1024 * 1024, `the server stopped reading (client still holds ${backlog} bytes)`);
    let received = 0;
    await new Promise<void>((resolve) => held()?.readBody((chunk) => (received += chunk.length), resolve));
    assert.equal(received, body.length, "and reads it all once the body is wanted");
  });

  test("tiny chunks behind long extensions count too: a held chunked body stops the reading after a bounded amount of wire", async (t) => {
    const { s, held } = await holdingServer(t);
    const c = s.client();
    // One body byte per 1 KiB on the wire: counted by body bytes alone, the 64 KiB bound would
    // let 64 MiB of socket reads be held (each 1-byte slice keeping its whole read alive).
    const chunk = Buffer.from(`1;${"x".repeat(1000)}\r\nZ\r\n`, "latin1");
    const wire = Buffer.concat(Array<Buffer>(32 * 1024).fill(chunk)); // 32 MiB
    c.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.socket.write(wire);
    await until(() => held() !== undefined, 3000, "the request");
    const backlog = await backlogOnceReadingStops(c.socket);
    assert.ok(backlog > wire.length - 8 * 1024 * 1024, `the server read ${wire.length - backlog} of ${wire.length} bytes of a body nobody reads yet`);
    c.socket.destroy();
  });

  test("a client that does not read its response is cut after clientTimeoutMs", async (t) => {
    const big = Buffer.alloc(4 * 1024 * 1024, 120);
    let closed = false;
    const s = await startServer({ clientTimeoutMs: 150 }, (_req, res) => {
      res.once("close", () => (closed = true));
      res.writeHead(200, undefined, ["Content-Length", String(big.length * 4)]);
      const pump = (): void => {
        while (res.write(big)) if (res.writableFinished) return;
        res.once("drain", pump);
      };
      pump();
      return true;
    });
    t.after(() => s.close());
    const c = s.client();
    c.socket.pause();
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await until(() => closed, 5000, "the unread response to be cut");
  });
});

describe("Pith's HTTP server: pipelined streams, fuzzed", () => {
  test("any sequence of requests, split into writes anywhere, is answered in order, each with its own body", async (t) => {
    const s = await startServer();
    t.after(() => s.close());
    const requestArb = fc.record({
      path: fc.stringMatching(/^\/[a-z0-9]{0,8}$/),
      body: fc.stringMatching(/^[a-z]{0,30}$/),
      chunked: fc.boolean(),
      expect: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(requestArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 5 }), async (requests, cuts) => {
        const wire = requests
          .map((r) => {
            const framing = r.chunked
              ? `Transfer-Encoding: chunked\r\n\r\n${r.body.length > 0 ? `${r.body.length.toString(16)}\r\n${r.body}\r\n` : ""}0\r\n\r\n`
              : `Content-Length: ${r.body.length}\r\n\r\n${r.body}`;
            return `POST ${r.path} HTTP/1.1\r\nHost: a\r\n${r.expect && r.body.length > 0 ? "Expect: 100-continue\r\n" : ""}${framing}`;
          })
          .join("");
        const c = s.client();
        const points = [...new Set(cuts.map((x) => x % (wire.length + 1)))].sort((a, b) => a - b);
        let from = 0;
        for (const p of [...points, wire.length]) {
          if (p > from) c.send(wire.slice(from, p));
          from = p;
        }
        const expected = requests.map((r) => `POST ${r.path} ${r.body}`);
        await until(() => expected.every((e) => c.text.includes(e)), 5000, "every answer");
        const answers = c.text.split(/HTTP\/1\.1 200 OK\r\n/).slice(1).map((a) => a.slice(a.indexOf("\r\n\r\n") + 4).replace(/HTTP\/1\.1 100 Continue\r\n\r\n/g, ""));
        assert.deepEqual(answers, expected);
        c.socket.destroy();
      }),
      { numRuns: 60, interruptAfterTimeLimit: 15_000 },
    );
  });
});
