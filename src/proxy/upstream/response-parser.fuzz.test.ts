import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { messageBytes, splitReads as split } from "../http/parser-properties.ts";
import { type ResponseHead, ResponseParseError, ResponseParser, scanStatusLine, slowStatusLine } from "./response-parser.ts";

/**
 * What a machine sends back through the proxy is the machine's to choose. Whatever the bytes, the
 * parser either frames a response or throws ResponseParseError (the proxy's 502), never anything
 * else; and how the bytes are split into reads never changes the outcome.
 */
const RUNS = { numRuns: 1500, interruptAfterTimeLimit: 8_000 };

interface Outcome {
  heads: ResponseHead[];
  body: string;
  ends: number;
  error: string | undefined;
}

function run(pieces: Buffer[], method: string, close: boolean): Outcome {
  const out: Outcome = { heads: [], body: "", ends: 0, error: undefined };
  const p = new ResponseParser({
    onHead: (head) => out.heads.push(head),
    onBody: (chunk) => (out.body += chunk.toString("latin1")),
    onEnd: () => out.ends++,
  });
  p.start(method);
  try {
    for (const piece of pieces) p.feed(piece);
    if (close && !p.done) p.end();
  } catch (e) {
    assert.ok(e instanceof ResponseParseError, `threw ${e instanceof Error ? e.stack : String(e)}`);
    out.error = "parse error";
  }
  return out;
}

const part = fc.constantFrom(
  "HTTP/1.1 200 OK\r\n", "HTTP/1.0 204 No Content\r\n", "HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 304 Not Modified\r\n", "HTTP/1.1 999 X\r\n", "HTTP/2 200\r\n",
  "Content-Length: 5\r\n", "Content-Length: 0\r\n", "Content-Length: -1\r\n", "Content-Length: 5, 5\r\n", "Content-Length: 99999999999999999\r\n",
  "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: gzip, chunked\r\n", "Connection: close\r\n", "Connection: keep-alive\r\n", "Keep-Alive: timeout=3\r\n",
  " folded\r\n", "X: \u0000\r\n", "Bad Name: x\r\n", "X:y\n", "\r\n", "\n", "\r",
  "5\r\nhello\r\n", "0\r\n\r\n", "fffffffffffff\r\n", "5;ext=1\r\nhello\r\n", "0\r\nTrailer: x\r\n\r\n", "hello", "x".repeat(20_000),
);
const response = messageBytes(part, 12);

test("any bytes: a response or a ResponseParseError, the same however they are split into reads", () => {
  fc.assert(
    fc.property(response, fc.array(fc.nat(), { maxLength: 6 }), fc.constantFrom("GET", "HEAD"), fc.boolean(), (bytes, cuts, method, close) => {
      const whole = run([bytes], method, close);
      const pieces = run(split(bytes, cuts), method, close);
      const bytewise = run([...bytes].map((b) => Buffer.from([b])), method, close);
      assert.deepEqual(pieces, whole);
      assert.deepEqual(bytewise, whole);
    }),
    RUNS,
  );
});

test("the status line's fast scan takes exactly what the regex takes, with the same parts", () => {
  // Mostly well-formed lines, each part sometimes replaced by something that is not.
  const odd = fc.constantFrom("", " ", "\t", "\x7f", "\x00", "\r", "é");
  const part = (...good: string[]) => fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...good) }, odd, fc.string({ maxLength: 3 }));
  const version = part("HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/2");
  const status = part("200", "099", "100", "999", "1000", "20");
  const reason = part("", " OK", " Not Found", " ", " \t\xe9x", " a\x7f");
  fc.assert(
    fc.property(fc.tuple(version, part(" "), status, reason), (parts) => {
      const line = parts.join("");
      const fast = scanStatusLine(line, line.length);
      let slow: ReturnType<typeof slowStatusLine> | undefined;
      try {
        slow = slowStatusLine(line);
      } catch {
        slow = undefined;
      }
      if (fast) assert.deepEqual(fast, slow);
      else assert.equal(slow, undefined, `the scan refused ${JSON.stringify(line)}, which the regex takes`);
    }),
    RUNS,
  );
});
