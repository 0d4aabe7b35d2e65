import assert from "node:assert/strict";
import { test } from "node:test";
import { isEndpoint, isHostName } from "../proxy/haproxy/runtime-values.ts";
import { backendEndpoint } from "./backend-address.ts";

test("a backend is a literal loopback IP with an explicit port, nothing else", () => {
  assert.deepEqual(backendEndpoint(new URL("http://127.0.0.1:8080/")), { address: "127.0.0.1", port: 8080 });
  assert.deepEqual(backendEndpoint(new URL("http://127.3.4.5:1/")), { address: "127.3.4.5", port: 1 });
  assert.deepEqual(backendEndpoint(new URL("http://[::1]:9000/")), { address: "::1", port: 9000 });
  for (const url of ["http://10.0.0.1:80/", "http://[fe80::1]:80/", "http://localhost:80/", "http://evil.example.com:80/", "http://127.0.0.1/", "https://127.0.0.1:443/", "http://u:p@127.0.0.1:80/", "http://0.0.0.0:80/"]) {
    assert.ok("refused" in backendEndpoint(new URL(url)), url);
  }
});

test("a machine on a node with an address is dialled at that address only", () => {
  assert.deepEqual(backendEndpoint(new URL("http://10.213.0.11:20001/"), "10.213.0.11"), { address: "10.213.0.11", port: 20001 });
  assert.ok("refused" in backendEndpoint(new URL("http://127.0.0.1:20001/"), "10.213.0.11"), "not loopback either: that would be the proxy's own host");
  assert.ok("refused" in backendEndpoint(new URL("http://10.213.0.12:20001/"), "10.213.0.11"), "another node's address");
  assert.ok("refused" in backendEndpoint(new URL("http://10.213.0.11:20001/")), "a node that registered none");
  assert.ok("refused" in backendEndpoint(new URL("http://0.0.0.0:20001/"), "0.0.0.0"), "a registered address that is no address");
});

test("host names for HAProxy's map follow RFC 1123 and nothing more", () => {
  for (const ok of ["a", "web.localhost", "www.example.com", "x-1.y2", `${"a".repeat(63)}.com`]) assert.equal(isHostName(ok), true, ok);
  for (const bad of ["", "a b", "a\nb", "a;b", "a\tb", "-a.com", "a-.com", "a..b", ".a", "A.com", "a_b.com", "a:80", "[::1]", `${"a".repeat(64)}.com`, `${"a.".repeat(127)}a`]) {
    assert.equal(isHostName(bad), false, JSON.stringify(bad));
  }
});

test("runtime API endpoints are literal IPs and integer ports", () => {
  assert.equal(isEndpoint("127.0.0.1", 80), true);
  assert.equal(isEndpoint("::1", 65535), true);
  for (const [address, port] of [["127.0.0.1 ", 80], ["127.0.0.1;x", 80], ["host", 80], ["127.0.0.1", 0], ["127.0.0.1", 65536], ["127.0.0.1", 80.5], ["127.0.0.1", Number.NaN]] as const) {
    assert.equal(isEndpoint(address, port), false, `${address} ${port}`);
  }
});
