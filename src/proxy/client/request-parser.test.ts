import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MAX_HEAD_BYTES } from "../http/field-lines.ts";
import { MAX_FIELDS, type RequestHead, RequestParseError, RequestParser } from "./request-parser.ts";

interface Parsed {
  heads: RequestHead[];
  body: string;
  ends: number;
  /** Where the parser stopped in the last piece. */
  stoppedAt: number;
}

/** Feeds `pieces` in order until the message ends (the rest of that piece is left, as a connection leaves it). */
function parse(pieces: (string | Buffer)[]): Parsed {
  const out: Parsed = { heads: [], body: "", ends: 0, stoppedAt: 0 };
  const parser = new RequestParser({
    onHead: (head) => out.heads.push(head),
    onBody: (chunk) => (out.body += chunk.toString("latin1")),
    onEnd: () => out.ends++,
  });
  for (const piece of pieces) {
    const data = typeof piece === "string" ? Buffer.from(piece, "latin1") : piece;
    out.stoppedAt = parser.feed(data);
    if (parser.done) break;
  }
  return out;
}

function refused(text: string, status: number, pattern: RegExp): void {
  assert.throws(
    () => parse([text]),
    (error: unknown) => error instanceof RequestParseError && error.status === status && pattern.test(error.message),
    `expected ${status} ${pattern} for ${JSON.stringify(text.slice(0, 120))}`,
  );
}

describe("request parser", () => {
  test("reads a GET head: method, target, version, fields as sent, Host, keep-alive by version and Connection", () => {
    const out = parse(["GET /a?b=1 HTTP/1.1\r\nHost: example.test\r\nX-Two:  spaced value \t\r\nEmpty:\r\n\r\n"]);
    assert.equal(out.heads.length, 1);
    const head = out.heads[0] as RequestHead;
    assert.deepEqual(
      { method: head.method, target: head.target, minorVersion: head.minorVersion, host: head.host, keepAlive: head.keepAlive, contentLength: head.contentLength },
      { method: "GET", target: "/a?b=1", minorVersion: 1, host: "example.test", keepAlive: true, contentLength: 0 },
    );
    assert.deepEqual(head.rawHeaders, ["Host", "example.test", "X-Two", "spaced value", "Empty", ""]);
    assert.equal(out.ends, 1);
    assert.equal(parse(["GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"]).heads[0]?.keepAlive, false);
    assert.equal(parse(["GET / HTTP/1.0\r\n\r\n"]).heads[0]?.keepAlive, false);
    assert.equal(parse(["GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"]).heads[0]?.keepAlive, true);
    assert.equal(parse(["GET / HTTP/1.0\r\n\r\n"]).heads[0]?.host, undefined);
    assert.equal(parse(["OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"]).heads[0]?.target, "*");
  });

  test("stops at the end of each message: a pipelined request is left for the next reset()", () => {
    const parser = new RequestParser({ onHead: () => undefined, onBody: () => undefined, onEnd: () => undefined });
    const data = Buffer.from("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", "latin1");
    const first = parser.feed(data);
    assert.equal(data.toString("latin1", first), "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert.equal(parser.done, true);
    assert.equal(parser.feed(data, first), first, "takes nothing before reset()");
    parser.reset();
    assert.equal(parser.feed(data, first), data.length);
    assert.throws(() => new RequestParser({ onHead() {}, onBody() {}, onEnd() {} }).reset(), /before the message ended/);
  });

  test("empty lines before a request line are skipped", () => {
    assert.equal(parse(["\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"]).heads[0]?.target, "/");
  });

  test("a Content-Length body arrives as slices, split anywhere; the bytes after it are left", () => {
    const text = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello worldGET";
    for (let cut = 1; cut < text.length; cut++) {
      const out = parse([text.slice(0, cut), text.slice(cut)]);
      assert.equal(out.body, "hello world", `cut at ${cut}`);
      assert.equal(out.ends, 1);
    }
    const whole = parse([text]);
    assert.equal(text.slice(whole.stoppedAt), "GET");
  });

  test("a chunked body is decoded, extensions and trailers checked and dropped, split anywhere", () => {
    const text = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    for (let cut = 1; cut < text.length; cut++) {
      const out = parse([text.slice(0, cut), text.slice(cut)]);
      assert.equal(out.body, "hello world", `cut at ${cut}`);
      assert.equal(out.ends, 1);
      assert.equal(out.heads[0]?.contentLength, undefined);
    }
    assert.equal(parse(["POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"]).ends, 1);
  });

  test("request smuggling: both framings, two lengths, a list of lengths, a bad length, other codings are refused", () => {
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, /both Content-Length and Transfer-Encoding/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, /both/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400, /more than one Content-Length/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400, /invalid Content-Length/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400, /invalid Content-Length/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400, /invalid Content-Length/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n", 400, /invalid Content-Length/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, /more than one Transfer-Encoding/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400, /last Transfer-Encoding must be chunked/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400, /last Transfer-Encoding must be chunked/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, /unsupported Transfer-Encoding/);
    refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, /HTTP\/1\.0/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400, /invalid header name/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400, /not followed by CRLF/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400, /chunk-size line not ended by CRLF/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400, /malformed chunk-size/);
    refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n", 400, /invalid header name/);
  });

  test("line endings: bare LF and bare CR anywhere in the head, obs-fold, controls in values are refused", () => {
    refused("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, /control character \(0x0a\)/);
    refused("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, /control character \(0x0a\)/);
    refused("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400, /control character \(0x0d\)/);
    refused("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n continued\r\n\r\n", 400, /obsolete line folding/);
    refused("GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, /control character \(0x00\)/);
    refused("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400, /control character \(0x7f\)/);
    refused("GET / HTTP/1.1\r\nHost: a\r\nNo colon\r\n\r\n", 400, /invalid header name|without a colon/);
    refused("GET / HTTP/1.1\r\nHost: a\r\n: novalue\r\n\r\n", 400, /without a name/);
    refused("GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n", 400, /invalid header name/);
  });

  test("request line: origin-form only, HTTP/1.x only, CONNECT refused", () => {
    refused("GET http://other.test/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, /must be a path/);
    refused("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, /must be a path/);
    refused("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405, /CONNECT/);
    refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, /not supported/);
    refused("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, /not supported/);
    refused("GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n", 400, /malformed request line/);
    refused("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, /malformed request line/);
    refused("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, /malformed request line/);
    refused("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400, /control character|malformed/);
  });

  test("Host: exactly one for HTTP/1.1, made of authority characters", () => {
    refused("GET / HTTP/1.1\r\n\r\n", 400, /without Host/);
    refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, /more than one Host/);
    refused("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, /invalid Host/);
    refused("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, /invalid Host/);
    refused("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400, /invalid Host/);
    assert.equal(parse(["GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"]).heads[0]?.host, "[::1]:8080");
  });

  test("oversized heads and too many fields are 431s, however the head arrives", () => {
    const big = `GET / HTTP/1.1\r\nHost: a\r\nX: ${"a".repeat(MAX_HEAD_BYTES)}\r\n\r\n`;
    refused(big, 431, /larger than/);
    assert.throws(() => parse([big.slice(0, 1000), big.slice(1000, 9000), big.slice(9000)]), (e: unknown) => e instanceof RequestParseError && e.status === 431);
    const longLine = `GET /${"a".repeat(MAX_HEAD_BYTES)} HTTP/1.1\r\n`;
    assert.throws(() => parse([longLine]), (e: unknown) => e instanceof RequestParseError && e.status === 431, "no end in sight is refused before the end arrives");
    let many = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (let i = 0; i < MAX_FIELDS; i++) many += `X-${i}: v\r\n`;
    refused(`${many}\r\n`, 431, /more than 100 header fields/);
    const trailers = `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ${"a".repeat(MAX_HEAD_BYTES)}\r\n\r\n`;
    refused(trailers, 431, /request trailers larger/);
  });

  test("Expect: 100-continue is reported for a body; other expectations are 417; HTTP/1.0 ignores it", () => {
    assert.equal(parse(["PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx"]).heads[0]?.expectContinue, true);
    assert.equal(parse(["GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n"]).heads[0]?.expectContinue, false);
    refused("PUT / HTTP/1.1\r\nHost: a\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx", 417, /unsupported expectation/);
    assert.equal(parse(["PUT / HTTP/1.0\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx"]).heads[0]?.expectContinue, false);
  });

  test("an upgrade ends at its head, the rest is the tunnel's; one with a body is refused", () => {
    const text = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00raw";
    const out = parse([text]);
    assert.equal(out.heads[0]?.upgrade, true);
    assert.equal(out.ends, 1);
    assert.equal(text.slice(out.stoppedAt), "\x81\x00raw");
    assert.equal(parse(["GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"]).heads[0]?.upgrade, false, "Upgrade without Connection: upgrade is no upgrade");
    refused("POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 3\r\n\r\nabc", 400, /upgrade request with a body/);
  });

  test("after a refusal the parser refuses everything", () => {
    const parser = new RequestParser({ onHead() {}, onBody() {}, onEnd() {} });
    assert.throws(() => parser.feed(Buffer.from("BAD\r\n\r\n")), RequestParseError);
    assert.throws(() => parser.feed(Buffer.from("GET / HTTP/1.1\r\nHost: a\r\n\r\n")), /already refused/);
  });
});
