import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ESLint } from "eslint";

const root = join(import.meta.dirname, "../..");
const fixture = join(root, "test/fixtures/lint/promises.ts");

test("the lint step reports a promise nobody handles and one passed where nothing awaits it, and nothing else", { timeout: 120_000 }, async () => {
  const eslint = new ESLint({ cwd: root, ignore: false });
  const [result] = await eslint.lintFiles([fixture]);
  const lines = (await readFile(fixture, "utf8")).split("\n");
  const expected = lines.flatMap((line, i) => {
    const m = /flagged: (\S+)/.exec(line);
    return m ? [`${i + 1} @typescript-eslint/${m[1]}`] : [];
  });
  assert.equal(expected.length, 2);
  assert.deepEqual(result!.messages.map((m) => `${m.line} ${m.ruleId}`), expected);
});
