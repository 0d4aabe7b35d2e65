import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readEnvFile } from "./env-file.ts";

test("an env file gives KEY=VALUE lines verbatim, skips comments and blanks, and never echoes a value in an error", () => {
  const dir = mkdtempSync(join(tmpdir(), "pith-env-file-"));
  try {
    const good = join(dir, "good.env");
    writeFileSync(good, "# the proxy's token\nAPI_TOKEN=pith_0123_abc=def\r\n\nEMPTY=\n  # indented comment\nSPACED= a b \n");
    assert.deepEqual(readEnvFile(good), { API_TOKEN: "pith_0123_abc=def", EMPTY: "", SPACED: " a b " });
    for (const [line, message] of [
      ["no-equals-secret-value", /bad\.env:2: expected KEY=VALUE/],
      ["1BAD=secret-value", /bad\.env:2: "1BAD" is not a valid environment variable name/],
      ["PITH_ID=secret-value", /bad\.env:2: names starting with PITH_ are reserved for Pith/],
      ["MULTI=secret\rvalue", /bad\.env:2: the value contains a carriage return/],
    ] as const) {
      const bad = join(dir, "bad.env");
      writeFileSync(bad, `OK=1\n${line}\n`);
      assert.throws(() => readEnvFile(bad), (e: Error) => message.test(e.message) && !e.message.includes("secret-value"));
    }
    assert.throws(() => readEnvFile(join(dir, "missing.env")), /--env-file .*missing\.env/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
