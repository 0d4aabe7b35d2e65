import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MAX_HEAD_BYTES, type ResponseHead, ResponseParseError, ResponseParser } from "./response-parser.ts";

interface Parsed {
  heads: ResponseHead[];
  body: string;
  ends: number;
}

/** A parser recording its events, started for `method`. */
function parser(method = "GET"): { p: ResponseParser; out: Parsed } {
  const out: Parsed = { heads: [], body: "", ends: 0 };
  const p = new ResponseParser({
    onHead: (head) => out.heads.push(head),
    onBody: (chunk) => (out.body += chunk.toString("latin1")),
    onEnd: () => out.ends++,
  });
  p.start(method);
  return { p, out };
}

/** Feeds `text` in the given pieces; `close` ends the connection afterwards. */
function parse(pieces: string[], options: { method?: string; close?: boolean } = {}): Parsed & { p: ResponseParser } {
  const { p, out } = parser(options.method);
  for (const piece of pieces) p.feed(Buffer.from(piece, "latin1"));
  if (options.close) p.end();
  return { ...out, p };
}

/** Every way to cut `text` in two, and byte by byte: the same result each time. */
function everySplit(text: string, check: (result: Parsed & { p: ResponseParser }) => void, options: { method?: string; close?: boolean } = {}): void {
  check(parse([text], options));
  check(parse([...text], options));
  for (let i = 1; i < text.length; i++) check(parse([text.slice(0, i), text.slice(i)], options));
  for (let i = 1; i < text.length - 1; i++) check(parse([text.slice(0, i), text.slice(i, i + 1), text.slice(i + 1)], options));
}

const rejects = (pieces: string[], pattern: RegExp, options: { method?: string; close?: boolean } = {}): void => {
  assert.throws(() => parse(pieces, options), (error: unknown) => error instanceof ResponseParseError && pattern.test(error.message));
};

describe("ResponseParser", () => {
  test("a Content-Length response, split at every byte boundary", () => {
    const text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nX-Empty:\r\nX-Pad: \t v \t\r\n\r\nhello world";
    everySplit(text, (r) => {
      assert.equal(r.heads.length, 1);
      const head = r.heads[0] as ResponseHead;
      assert.equal(head.status, 200);
      assert.equal(head.reason, "OK");
      assert.equal(head.minorVersion, 1);
      assert.deepEqual(head.rawHeaders, ["Content-Type", "text/plain", "Content-Length", "11", "X-Empty", "", "X-Pad", "v"]);
      assert.equal(head.keepAlive, true);
      assert.equal(r.body, "hello world");
      assert.equal(r.ends, 1);
      assert.ok(r.p.done && r.p.reusable);
    });
  });

  test("a chunked response with extensions and trailers, split at every byte boundary", () => {
    const text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1 ; b\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\nX-Other: o\r\n\r\n";
    everySplit(text, (r) => {
      assert.equal(r.body, "hello 0123456789");
      assert.equal(r.ends, 1);
      assert.ok(r.p.reusable);
    });
  });

  test("a chunked response without trailers, split at every byte boundary; hex sizes in either case", () => {
    everySplit("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\na\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n", (r) => {
      assert.equal(r.body, "0123456789abcdefghijk");
      assert.equal(r.ends, 1);
    });
  });

  test("a body delimited by the connection's close, split at every byte boundary", () => {
    everySplit(
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
      (r) => {
        assert.equal(r.body, "until the end");
        assert.equal(r.ends, 1);
        assert.equal(r.heads[0]?.keepAlive, false);
        assert.ok(!r.p.reusable);
      },
      { close: true },
    );
  });

  test("HEAD, 204 and 304 responses have no body whatever their headers say", () => {
    const head = parse(["HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"], { method: "HEAD" });
    assert.equal(head.ends, 1);
    assert.ok(head.p.reusable);
    const headChunked = parse(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"], { method: "HEAD" });
    assert.equal(headChunked.ends, 1);
    for (const status of [204, 304]) {
      const r = parse([`HTTP/1.1 ${status} Whatever\r\nContent-Length: 5\r\n\r\n`]);
      assert.equal(r.ends, 1);
      assert.equal(r.heads[0]?.status, status);
      assert.ok(r.p.reusable);
    }
    const empty = parse(["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]);
    assert.equal(empty.ends, 1);
  });

  test("interim 1xx responses are skipped; the final one is reported", () => {
    everySplit("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", (r) => {
      assert.equal(r.heads.length, 1);
      assert.equal(r.heads[0]?.status, 201);
      assert.equal(r.body, "ok");
      assert.equal(r.ends, 1);
    });
  });

  test("keep-alive: HTTP/1.1 unless Connection: close; HTTP/1.0 only with Connection: keep-alive; Keep-Alive timeout hint", () => {
    const keepAlive = (head: string): boolean | undefined => parse([`${head}\r\nContent-Length: 0\r\n\r\n`]).heads[0]?.keepAlive;
    assert.equal(keepAlive("HTTP/1.1 200 OK"), true);
    assert.equal(keepAlive("HTTP/1.1 200 OK\r\nConnection: Close"), false);
    assert.equal(keepAlive("HTTP/1.1 200 OK\r\nConnection: x-foo, close"), false);
    assert.equal(keepAlive("HTTP/1.0 200 OK"), false);
    assert.equal(keepAlive("HTTP/1.0 200 OK\r\nConnection: keep-alive"), true);
    const hinted = parse(["HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n"]).heads[0];
    assert.equal(hinted?.keepAliveTimeoutMs, 5000);
    assert.equal(parse(["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).heads[0]?.keepAliveTimeoutMs, undefined);
  });

  test("status lines: no reason phrase is fine; anything else off-grammar is rejected", () => {
    assert.equal(parse(["HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n"]).heads[0]?.reason, "");
    assert.equal(parse(["HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"]).heads[0]?.reason, "");
    assert.equal(parse(["HTTP/1.1 599 Made Up\r\nContent-Length: 0\r\n\r\n"]).heads[0]?.reason, "Made Up");
    for (const line of ["HTTP/2.0 200 OK", "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 099 Low", "http/1.1 200 OK", "HTTP/1.1  200 OK", "ICY 200 OK"]) {
      rejects([`${line}\r\nContent-Length: 0\r\n\r\n`], /malformed status line/);
    }
    rejects(["HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n"], /control character/);
  });

  test("malformed header fields are rejected", () => {
    const head = (field: string): string[] => [`HTTP/1.1 200 OK\r\n${field}\r\nContent-Length: 0\r\n\r\n`];
    rejects(head("Bad Name: x"), /invalid header name/);
    rejects(head("Name : x"), /invalid header name/);
    rejects(head(": x"), /without a name/);
    rejects(head("NoColon"), /without a colon/);
    rejects(head("X-A: a\r\n folded"), /obsolete line folding/);
    rejects(head("X-A: a\x00b"), /control character \(0x00\)/);
    rejects(head("X-A: a\rb"), /control character \(0x0d\)/);
    rejects(head("X-A: a\x7fb"), /control character \(0x7f\)/);
    // Bare LFs never end the head: it is incomplete until the close (or the size limit).
    rejects(["HTTP/1.1 200 OK\nContent-Length: 0\n\n"], /closed before/, { close: true });
    rejects(["HTTP/1.1 200 OK\nX: y\r\n\r\n"], /control character \(0x0a\)/);
    rejects(["HTTP/1.1 200 OK\r\nX: y\nZ: w\r\n\r\n"], /control character \(0x0a\)/);
  });

  test("framing that cannot be trusted is rejected", () => {
    rejects(["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"], /more than one Content-Length/);
    rejects(["HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"], /invalid Content-Length/);
    rejects(["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"], /invalid Content-Length/);
    rejects(["HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n"], /invalid Content-Length/);
    rejects(["HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n"], /invalid Content-Length/);
    rejects(["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"], /both Content-Length and Transfer-Encoding/);
    rejects(["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"], /unsupported Transfer-Encoding/);
    rejects(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"], /unsupported Transfer-Encoding/);
    rejects(["HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"], /101/);
  });

  test("malformed chunked bodies are rejected", () => {
    const chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    rejects([`${chunked}g\r\nx\r\n0\r\n\r\n`], /malformed chunk-size line/);
    rejects([`${chunked}\r\n`], /malformed chunk-size line/);
    rejects([`${chunked}-1\r\n`], /malformed chunk-size line/);
    rejects([`${chunked}12345678901234\r\n`], /malformed chunk-size line/);
    rejects([`${chunked}5\nhello\r\n0\r\n\r\n`], /not ended by CRLF/);
    rejects([`${chunked}5\r\nhelloX\r\n0\r\n\r\n`], /not followed by CRLF/);
    rejects([`${chunked}5\r\nhello\n0\r\n\r\n`], /not followed by CRLF/);
    rejects([`${chunked}0\r\nBad Trailer\r\n\r\n`], /invalid header name|without a name/);
    rejects([`${chunked}0\r\nX: a\x01\r\n\r\n`], /control character \(0x01\) in the trailers/);
    rejects([`${chunked}1;${"x".repeat(2000)}\r\n`], /chunk-size line too long/);
  });

  test("bytes outside a response are rejected: before a request, after the end", () => {
    const { p } = parser();
    p.feed(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"));
    assert.throws(() => p.feed(Buffer.from("y")), /data after the end of the response/);
    rejects(["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy"], /data after the end/);
    const idle = new ResponseParser({ onHead: () => undefined, onBody: () => undefined, onEnd: () => undefined });
    assert.throws(() => idle.feed(Buffer.from("HTTP/1.1 200 OK\r\n\r\n")), /no request outstanding/);
  });

  test("a head larger than the limit is rejected, in one piece or many", () => {
    const big = `HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(MAX_HEAD_BYTES)}\r\n\r\n`;
    rejects([big], /larger than/);
    rejects(big.match(/[\s\S]{1,1000}/g) ?? [], /larger than/);
  });

  test("a connection closed mid-response is an error; closed before any byte is not (the caller decides)", () => {
    rejects(["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"], /closed before the response was complete/, { close: true });
    rejects(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"], /closed before/, { close: true });
    rejects(["HTTP/1.1 200 O"], /closed before/, { close: true });
    const { p, out } = parser();
    p.end();
    assert.equal(out.heads.length, 0);
    assert.ok(!p.done && !p.started);
  });

  test("one parser serves consecutive responses; start() during feed() is refused", () => {
    const { p, out } = parser();
    p.feed(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"));
    p.start("GET");
    assert.ok(!p.started);
    p.feed(Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n"));
    assert.equal(out.body, "ab");
    assert.equal(out.ends, 2);

    const reentrant = new ResponseParser({
      onHead: () => undefined,
      onBody: () => undefined,
      onEnd: () => assert.throws(() => reentrant.start("GET")),
    });
    reentrant.start("GET");
    reentrant.feed(Buffer.from("HTTP/1.1 204 No Content\r\n\r\n"));
    assert.ok(reentrant.done);
  });

  test("abort() from a handler stops the parse", () => {
    const bodies: string[] = [];
    const p: ResponseParser = new ResponseParser({ onHead: () => p.abort(), onBody: (c) => bodies.push(c.toString()), onEnd: () => undefined });
    p.start("GET");
    p.feed(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"));
    assert.deepEqual(bodies, []);
    assert.ok(!p.done);
  });

  test("bodies are slices of the input, not copies", () => {
    const input = Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let chunk: Buffer | undefined;
    const p = new ResponseParser({ onHead: () => undefined, onBody: (c) => (chunk = c), onEnd: () => undefined });
    p.start("GET");
    p.feed(input);
    assert.equal(chunk?.buffer, input.buffer);
  });
});
