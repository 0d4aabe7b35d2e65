import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { messageBytes, splitReads as split } from "../http/parser-properties.ts";
import { requestHead } from "../exchange/forward-headers.ts";
import { type RequestHead, RequestParseError, RequestParser, scanRequestLine, slowRequestLine } from "./request-parser.ts";

/**
 * What a client sends is the client's to choose. Whatever the bytes, the parser either frames a
 * sequence of requests or throws RequestParseError (the proxy's 4xx), never anything else; how the
 * bytes are split into reads never changes where one request ends and the next begins (the
 * route is decided per request, so a disagreement there is a smuggled request); and what it reads,
 * written again as the proxy writes it to a machine, reads back the same.
 */
const RUNS = { numRuns: 1500, interruptAfterTimeLimit: 8_000 };

interface Message {
  method: string;
  target: string;
  rawHeaders: string[];
  /** The field lines as received (what the proxy forwards verbatim when none needs an edit). */
  fields: string;
  body: string;
  upgrade: boolean;
}

interface Outcome {
  messages: Message[];
  error: string | undefined;
}

/** Parses every request in the stream, pipelined, as a connection does (reset after each). */
function run(pieces: Buffer[]): Outcome {
  const out: Outcome = { messages: [], error: undefined };
  let current: Message | undefined;
  let upgraded = false;
  const parser = new RequestParser({
    onHead: (head: RequestHead) => {
      current = { method: head.method, target: head.target, rawHeaders: head.rawHeaders, fields: head.fields, body: "", upgrade: head.upgrade };
      out.messages.push(current);
    },
    onBody: (chunk) => {
      if (current) current.body += chunk.toString("latin1");
    },
    onEnd: () => {
      if (current?.upgrade) upgraded = true;
    },
  });
  try {
    for (const piece of pieces) {
      let at = 0;
      while (at < piece.length && !upgraded) {
        at = parser.feed(piece, at);
        if (parser.done && !upgraded) parser.reset();
      }
      if (upgraded) break;
    }
  } catch (e) {
    assert.ok(e instanceof RequestParseError, `threw ${e instanceof Error ? e.stack : String(e)}`);
    assert.ok([400, 405, 417, 431, 501, 505].includes(e.status), `status ${e.status}`);
    out.error = "refused";
  }
  return out;
}

const part = fc.constantFrom(
  "GET / HTTP/1.1\r\n", "POST /p HTTP/1.1\r\n", "GET / HTTP/1.0\r\n", "GET http://x/ HTTP/1.1\r\n", "GET / HTTP/2.0\r\n", "CONNECT a:1 HTTP/1.1\r\n",
  "Host: a\r\n", "Host: b\r\n", "Host: a b\r\n", "Content-Length: 5\r\n", "Content-Length: 0\r\n", "Content-Length: -1\r\n", "Content-Length: 5, 5\r\n",
  "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: gzip, chunked\r\n", "Transfer-Encoding: chunked, identity\r\n", "Connection: close\r\n",
  "Connection: upgrade\r\n", "Upgrade: websocket\r\n", "Expect: 100-continue\r\n", "Expect: x\r\n",
  " folded\r\n", "X: \u0000\r\n", "Bad Name: x\r\n", "X:y\n", "\r\n", "\n", "\r",
  "5\r\nhello\r\n", "0\r\n\r\n", "fffffffffffff\r\n", "5;ext=1\r\nhello\r\n", "0\r\nTrailer: x\r\n\r\n", "hello", "x".repeat(20_000),
);
const stream = messageBytes(part, 14);

test("any bytes: requests or a RequestParseError, the same however they are split into reads", () => {
  fc.assert(
    fc.property(stream, fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
      const whole = run([bytes]);
      assert.deepEqual(run(split(bytes, cuts)), whole);
      assert.deepEqual(run([...bytes].map((b) => Buffer.from([b]))), whole);
    }),
    RUNS,
  );
});

const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
const fieldValue = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,20}[\x21-\x7e])?$/);
const request = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH"),
  target: fc.stringMatching(/^\/[\x21-\x7e]{0,30}$/),
  fields: fc.array(fc.tuple(token, fieldValue), { maxLength: 6 }),
  body: fc.string({ maxLength: 40 }),
  chunked: fc.boolean(),
});

test("a request read, then written as the proxy writes it upstream, reads back the same (head, body, and where it ends)", () => {
  const framing = new Set(["host", "content-length", "transfer-encoding", "connection", "upgrade", "expect"]);
  fc.assert(
    fc.property(fc.array(request, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 6 }), (requests, cuts) => {
      const wire = requests
        .map((r) => {
          const fields: string[] = ["Host", "svc.test"];
          for (const [name, value] of r.fields) if (!framing.has(name.toLowerCase())) fields.push(name, value);
          const body = Buffer.from(r.body, "latin1");
          if (!r.chunked) fields.push("Content-Length", String(body.length));
          const chunkedBody = body.length > 0 ? `${body.length.toString(16)}\r\n${r.body}\r\n0\r\n\r\n` : "0\r\n\r\n";
          return requestHead(r.method, r.target, { fields: undefined, headers: fields, chunked: r.chunked }) + (r.chunked ? chunkedBody : r.body);
        })
        .join("");
      const bytes = Buffer.from(wire, "latin1");
      const first = run(split(bytes, cuts));
      assert.equal(first.error, undefined);
      assert.equal(first.messages.length, requests.length);
      // Written again as HttpExchange does (the parser's fields, verbatim or re-serialised without Transfer-Encoding, the
      // body re-chunked when it came chunked): the same messages.
      const again = first.messages
        .map((m, i) => {
          const chunked = requests[i]?.chunked === true;
          const fields = m.rawHeaders;
          const pairs: string[] = [];
          for (let k = 0; k < fields.length; k += 2) if (!/^transfer-encoding$/i.test(fields[k] ?? "")) pairs.push(fields[k] as string, fields[k + 1] as string);
          const body = m.body.length > 0 ? `${Buffer.byteLength(m.body, "latin1").toString(16)}\r\n${m.body}\r\n0\r\n\r\n` : "0\r\n\r\n";
          const forward = chunked ? { fields: undefined, headers: pairs, chunked } : { fields: m.fields, headers: [], chunked };
          return requestHead(m.method, m.target, forward) + (chunked ? body : m.body);
        })
        .join("");
      const withoutFields = (o: Outcome) => ({ ...o, messages: o.messages.map(({ fields: _, ...m }) => m) });
      assert.deepEqual(withoutFields(run([Buffer.from(again, "latin1")])), withoutFields(first));
    }),
    { numRuns: 300, interruptAfterTimeLimit: 8_000 },
  );
});

test("the request line's fast scan takes exactly what the regex takes, with the same parts", () => {
  // Mostly well-formed lines, each part sometimes replaced by something that is not.
  const odd = fc.constantFrom("", " ", "\t", "\x7f", "\x00", "\r", "é");
  const part = (...good: string[]) => fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...good) }, odd, fc.string({ maxLength: 3 }));
  const method = part("GET", "OPTIONS", "M-1", "x~y");
  const target = part("/", "/a?b=c", "*", "/\x80\xe9", "/%20");
  const version = part("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.", "HTTP/x.1", "HTTP/1.1 ");
  const sp = part(" ");
  fc.assert(
    fc.property(fc.tuple(method, sp, target, sp, version), (parts) => {
      const line = parts.join("");
      const fast = scanRequestLine(line, line.length);
      let slow: ReturnType<typeof slowRequestLine> | undefined;
      try {
        slow = slowRequestLine(line);
      } catch {
        slow = undefined;
      }
      if (fast) assert.deepEqual(fast, slow); // whatever the scan takes, the regex takes the same way
      else assert.equal(slow, undefined, `the scan refused ${JSON.stringify(line)}, which the regex takes`);
    }),
    RUNS,
  );
});
