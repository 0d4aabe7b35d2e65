import assert from "node:assert/strict";
import { test } from "node:test";
import { forwardRequest, requestHead, responseHeaders } from "./forward-headers.ts";

const client = (rawHeaders: string[], fields?: string) => ({ rawHeaders, remoteAddress: "127.0.0.9", fields });

test("a request whose fields need no edit goes upstream with its field lines verbatim, then the proxy's own", () => {
  const fields = "Host: a.test\r\nAccept:  */* \r\nContent-Length: 3";
  const forward = forwardRequest(client(["Host", "a.test", "Accept", "*/*", "Content-Length", "3"], fields), "http", false);
  assert.equal(forward.fields, fields);
  assert.deepEqual(forward.headers.filter((_, i) => i % 2 === 0), ["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id"]);
  assert.equal(forward.hasBody, true);
  assert.equal(forward.chunked, false);
  const head = requestHead("POST", "/x", forward);
  assert.ok(head.startsWith(`POST /x HTTP/1.1\r\n${fields}\r\nX-Forwarded-For: 127.0.0.9\r\n`), head);
  assert.ok(head.endsWith(`X-Request-Id: ${forward.requestId}\r\n\r\n`), head);
});

test("any field the proxy drops or sets makes it re-serialise the fields, without the dropped ones", () => {
  const cases: [string, string][] = [
    ["Connection", "x-secret"],
    ["Keep-Alive", "timeout=5"],
    ["TE", "trailers"],
    ["Proxy-Authorization", "Basic x"],
    ["X-Forwarded-Host", "evil.test"],
    ["X-Forwarded-Proto", "https"],
    ["X-Forwarded-For", "10.0.0.1"],
    ["x-request-id", "abc"],
    ["Expect", "100-continue"],
  ];
  for (const [name, value] of cases) {
    const raw = ["Host", "a.test", name, value, "X-Secret", "1"];
    const forward = forwardRequest(client(raw, `Host: a.test\r\n${name}: ${value}\r\nX-Secret: 1`), "http", false);
    assert.equal(forward.fields, undefined, name);
    const head = requestHead("GET", "/", forward);
    assert.doesNotMatch(head, new RegExp(`^${name}: ${value}\r$`, "m"), `${name} crossed`);
    if (name === "Connection") assert.doesNotMatch(head, /X-Secret/, "a field named by Connection crossed");
    else assert.match(head, /\r\nX-Secret: 1\r\n/);
  }
  // without the field lines (node's server), always re-serialised
  assert.equal(forwardRequest(client(["Host", "a.test"]), "http", false).fields, undefined);
});

test("Connection cannot remove the body's framing or Host: the machine reads the one request the proxy parsed", () => {
  const body = "GET /admin HTTP/1.1\r\nHost: a.test\r\n\r\n";
  for (const listed of ["content-length", "Content-Length, x-secret", "host", "transfer-encoding"]) {
    const raw = ["Host", "a.test", "Content-Length", String(body.length), "Connection", listed];
    const forward = forwardRequest(client(raw, `Host: a.test\r\nContent-Length: ${body.length}\r\nConnection: ${listed}`), "http", false);
    const head = requestHead("POST", "/public", forward);
    assert.match(head, new RegExp(`\r\nContent-Length: ${body.length}\r\n`), `${listed}: the framing crossed`);
    assert.match(head, /\r\nHost: a\.test\r\n/, `${listed}: Host crossed`);
    assert.equal(forward.chunked, false);
  }
});

test("underscore spellings of the proxy's own headers are the proxy's to set, never passed through", () => {
  const raw = ["Host", "a.test", "X_Forwarded_For", "10.9.9.9", "x_forwarded_proto", "https", "X_FORWARDED_HOST", "evil.test", "X_Request_Id", "forged!id with space", "X_Other", "kept"];
  const forward = forwardRequest(client(raw, "Host: a.test\r\nX_Forwarded_For: 10.9.9.9\r\nx_forwarded_proto: https\r\nX_FORWARDED_HOST: evil.test\r\nX_Request_Id: forged!id with space\r\nX_Other: kept"), "http", false);
  const head = requestHead("GET", "/", forward);
  assert.doesNotMatch(head, /^x_forwarded|^x_request/im, "an underscore spelling crossed");
  assert.match(head, /\r\nX-Forwarded-For: 10\.9\.9\.9, 127\.0\.0\.9\r\n/, "a client's X_Forwarded_For joins the chain, as X-Forwarded-For would");
  assert.match(head, /\r\nX-Forwarded-Proto: http\r\n/);
  assert.match(head, /\r\nX-Forwarded-Host: a\.test\r\n/);
  assert.match(head, /\r\nX_Other: kept\r\n/, "other underscore names are the app's");
});

test("a response whose fields need no edit goes to the client verbatim, with X-Request-Id after them", () => {
  const fields = "Content-Type: text/plain\r\nContent-Length: 2";
  assert.deepEqual(responseHeaders(["Content-Type", "text/plain", "Content-Length", "2"], "id1", fields), { fields, headers: ["X-Request-Id", "id1"] });
  for (const [name, value] of [
    ["Connection", "close, x-a"],
    ["Keep-Alive", "timeout=5"],
    ["Transfer-Encoding", "chunked"],
    ["X-Request-Id", "forged"],
    ["Proxy-Connection", "keep-alive"],
    ["Upgrade", "h2c"],
  ] as const) {
    const out = responseHeaders(["Content-Length", "2", name, value, "X-A", "1"], "id1", `Content-Length: 2\r\n${name}: ${value}\r\nX-A: 1`);
    assert.equal(out.fields, undefined, name);
    assert.ok(!out.headers.includes(value), `${name} crossed`);
    assert.equal(out.headers.includes("X-A"), name !== "Connection", name);
    assert.deepEqual(out.headers.slice(-2), ["X-Request-Id", "id1"]);
  }
});
