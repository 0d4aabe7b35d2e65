import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { DEFAULT_SERVER, resolveClientConfig } from "./client-config.ts";

describe("client config", () => {
  const home = mkdtempSync(join(tmpdir(), "pith-config-"));
  const empty = mkdtempSync(join(tmpdir(), "pith-config-empty-"));
  after(() => {
    rmSync(home, { recursive: true, force: true });
    rmSync(empty, { recursive: true, force: true });
  });
  writeFileSync(join(home, "config.json"), JSON.stringify({ server: "http://config:1", token: "config-token" }));
  writeFileSync(join(home, "token"), "file-token\n", { mode: 0o600 });

  test("flags win over env, env over the config file", () => {
    const env = { PITH_HOME: home, PITH_SERVER: "http://env:2", PITH_TOKEN: "env-token" };
    assert.deepEqual(resolveClientConfig({ flags: { server: "http://flag:3", token: "flag-token" }, env }), {
      server: "http://flag:3",
      token: "flag-token",
      from: { server: "flag", token: "flag" },
    });
    assert.deepEqual(resolveClientConfig({ flags: {}, env }), { server: "http://env:2", token: "env-token", from: { server: "env", token: "env" } });
    assert.deepEqual(resolveClientConfig({ flags: { token: "flag-token" }, env: { PITH_HOME: home } }), {
      server: "http://config:1",
      token: "flag-token",
      from: { server: "config", token: "flag" },
    });
  });

  test("without flags, env or config: the default server and the token file", () => {
    const bare = mkdtempSync(join(tmpdir(), "pith-config-bare-"));
    try {
      writeFileSync(join(bare, "token"), "  written-by-the-control-plane\n", { mode: 0o600 });
      const config = resolveClientConfig({ flags: {}, env: { PITH_HOME: bare } });
      assert.deepEqual(config, { server: DEFAULT_SERVER, token: "written-by-the-control-plane", from: { server: "default", token: "token-file" } });
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });

  test("empty values do not count as set", () => {
    const config = resolveClientConfig({ flags: { server: "" }, env: { PITH_HOME: home, PITH_SERVER: "", PITH_TOKEN: " " } });
    assert.equal(config.server, "http://config:1");
    assert.equal(config.token, "config-token");
  });

  test("no token anywhere is a clear error", () => {
    assert.throws(() => resolveClientConfig({ flags: {}, env: { PITH_HOME: empty } }), (e: Error & { hint?: string }) => {
      assert.match(e.message, /no API token for the Pith control plane at http:\/\/127\.0\.0\.1:7070/);
      assert.match(e.message, /token does not exist/);
      assert.match(e.hint ?? "", /--token or set PITH_TOKEN/);
      return true;
    });
  });

  test("a broken config file is named", () => {
    const broken = mkdtempSync(join(tmpdir(), "pith-config-broken-"));
    try {
      writeFileSync(join(broken, "config.json"), "{ server: nope");
      assert.throws(() => resolveClientConfig({ flags: { token: "t" }, env: { PITH_HOME: broken } }), /config\.json is not valid JSON/);
      writeFileSync(join(broken, "config.json"), JSON.stringify({ server: 7070 }));
      assert.throws(() => resolveClientConfig({ flags: { token: "t" }, env: { PITH_HOME: broken } }), /"server" must be a string/);
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });

  test("an unreadable token file says whose it is", { skip: process.getuid?.() === 0 ? "root reads every file" : false }, () => {
    const locked = mkdtempSync(join(tmpdir(), "pith-config-locked-"));
    try {
      writeFileSync(join(locked, "token"), "secret");
      chmodSync(join(locked, "token"), 0o000);
      assert.throws(() => resolveClientConfig({ flags: {}, env: { PITH_HOME: locked } }), /cannot read the API token/);
    } finally {
      rmSync(locked, { recursive: true, force: true });
    }
  });
});
