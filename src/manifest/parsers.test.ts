import assert from "node:assert/strict";
import { test } from "node:test";
import { parseEgress } from "./egress.ts";
import { parseDurationMs, parseMemoryMiB } from "./sizes.ts";
import { closest, editDistance } from "./suggest.ts";

const value = <T>(r: { ok: true; value: T } | { ok: false; message: string }): T => {
  assert.ok(r.ok, r.ok ? "" : r.message);
  return r.value;
};

test("memory sizes are binary whatever the spelling", () => {
  const cases: [string, number][] = [["128M", 128], ["128m", 128], ["1G", 1024], ["2GiB", 2048], ["512MB", 512], ["64", 64], [" 256 Mi ", 256]];
  for (const [text, mib] of cases) assert.equal(value(parseMemoryMiB(text)), mib, text);
  for (const text of ["12X", "1.5G", "1T", "-1M", "", "M"]) assert.equal(parseMemoryMiB(text).ok, false, text);
});

test("durations need a unit", () => {
  assert.equal(value(parseDurationMs("500ms")), 500);
  assert.equal(value(parseDurationMs("30s")), 30_000);
  assert.equal(value(parseDurationMs("2m")), 120_000);
  const bare = parseDurationMs("30");
  assert.ok(!bare.ok && bare.hint.includes('"30s"'));
  assert.equal(parseDurationMs("1h").ok, false);
});

test("egress rules name one host and one port", () => {
  assert.deepEqual(value(parseEgress("Example.COM.:443")), { host: "example.com", port: 443 });
  assert.deepEqual(value(parseEgress("192.168.1.10:5432")), { host: "192.168.1.10", port: 5432 });
  const refused: [string, RegExp][] = [
    ["10.0.0.0/8:80", /CIDR/], ["*:443", /wildcard/], ["[::1]:80", /IPv6/], ["::1", /IPv6/], ["host", /no port/],
    [":80", /host is missing/], ["h:http", /invalid port/], ["h:65536", /out of range/], ["1.2.3:80", /IPv4/],
    ["-bad.com:1", /DNS name/], ["http://h:80", /URL/],
  ];
  for (const [text, why] of refused) {
    const r = parseEgress(text);
    assert.ok(!r.ok && why.test(r.message), `${text}: ${r.ok ? "accepted" : r.message}`);
  }
});

test("suggestions catch transpositions and near misses only", () => {
  assert.equal(editDistance("memroy", "memory"), 1);
  assert.equal(closest("memroy", ["name", "memory"]), "memory");
  assert.equal(closest("Vcpu", ["vcpus", "env"]), "vcpus");
  assert.equal(closest("ports", ["listen", "env"]), undefined);
  assert.equal(closest("x", ["env"]), undefined);
});
