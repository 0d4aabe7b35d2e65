import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { Command } from "commander";
import { DEFAULT_SERVER, registerClientOptions, resolveClientConfig } from "./client-config.ts";

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
    const tokenFile = join(home, "flag.token");
    writeFileSync(tokenFile, "flag-token\n", { mode: 0o600 });
    assert.deepEqual(resolveClientConfig({ flags: { server: "http://flag:3", tokenFile }, env }), {
      server: "http://flag:3",
      token: "flag-token",
      from: { server: "flag", token: "flag" },
    });
    assert.deepEqual(resolveClientConfig({ flags: {}, env }), { server: "http://env:2", token: "env-token", from: { server: "env", token: "env" } });
    assert.deepEqual(resolveClientConfig({ flags: { tokenFile }, env: { PITH_HOME: home } }), {
      server: "http://config:1",
      token: "flag-token",
      from: { server: "config", token: "flag" },
    });
  });

  test("a token in argv is refused with the ways that keep it out of ps", () => {
    assert.throws(() => resolveClientConfig({ flags: { token: "t" }, env: { PITH_HOME: home } }), (e: Error & { hint?: string; code?: string }) => {
      assert.equal(e.code, "TOKEN_IN_ARGV");
      assert.match(e.message, /--token is not accepted/);
      assert.match(e.hint ?? "", /--token-file FILE, the PITH_TOKEN environment variable, or "token" in \$PITH_HOME\/config\.json/);
      return true;
    });
  });

  test("--token is refused before any command runs, before or after the command's name", async () => {
    for (const argv of [["--token", "secret", "sub"], ["sub", "--token", "secret"]]) {
      const program = new Command("pith").exitOverride();
      registerClientOptions(program);
      let ran = false;
      program.command("sub").action(() => void (ran = true));
      await assert.rejects(program.parseAsync(argv, { from: "user" }), /--token is not accepted/);
      assert.equal(ran, false, argv.join(" "));
    }
  });

  test("--token-file must name a readable, non-empty file", () => {
    assert.throws(() => resolveClientConfig({ flags: { tokenFile: join(empty, "missing") }, env: { PITH_HOME: home, PITH_TOKEN: "env-token" } }), /cannot read the API token in .*missing/);
    const blank = join(home, "blank.token");
    writeFileSync(blank, "\n");
    assert.throws(() => resolveClientConfig({ flags: { tokenFile: blank }, env: { PITH_HOME: home } }), /blank\.token is empty/);
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
      assert.match(e.hint ?? "", /--token-file FILE, the PITH_TOKEN environment variable/);
      return true;
    });
  });

  test("a broken config file is named", () => {
    const broken = mkdtempSync(join(tmpdir(), "pith-config-broken-"));
    try {
      writeFileSync(join(broken, "config.json"), "{ server: nope");
      assert.throws(() => resolveClientConfig({ flags: {}, env: { PITH_HOME: broken, PITH_TOKEN: "t" } }), /config\.json is not valid JSON/);
      writeFileSync(join(broken, "config.json"), JSON.stringify({ server: 7070 }));
      assert.throws(() => resolveClientConfig({ flags: {}, env: { PITH_HOME: broken, PITH_TOKEN: "t" } }), /"server" must be a string/);
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
