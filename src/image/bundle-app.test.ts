import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { bundleApp } from "./bundle-app.ts";

/** An app importing a plain package, one with a native addon, and one it names as external. */
function app(t: TestContext): string {
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), "pith-bundle-")));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files: Record<string, string> = {
    "main.ts": 'import plain from "plain";\nimport addon from "addon/lib/x.js";\nimport own from "reads-own-files";\nconsole.log(plain, addon, own);\n',
    "node_modules/plain/package.json": '{"name":"plain","main":"index.js"}',
    "node_modules/plain/index.js": 'module.exports = "PLAIN_" + "INLINED";',
    "node_modules/addon/package.json": '{"name":"addon"}',
    "node_modules/addon/binding.gyp": "{}",
    "node_modules/addon/lib/x.js": 'module.exports = "ADDON_CODE";',
    "node_modules/reads-own-files/package.json": '{"name":"reads-own-files","main":"index.js"}',
    "node_modules/reads-own-files/index.js": 'module.exports = "OWN_FILES_CODE";',
  };
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

describe("bundling a Node app", () => {
  test("native and declared packages stay external and are reported; the rest is bundled", async (t) => {
    const dir = app(t);
    const bundle = await bundleApp(path.join(dir, "main.ts"), dir, ["reads-own-files"]);
    const code = Buffer.from(bundle.code).toString("utf8");
    assert.match(code, /PLAIN_/);
    assert.doesNotMatch(code, /ADDON_CODE|OWN_FILES_CODE/);
    assert.match(code, /from "addon\/lib\/x\.js"/);
    assert.match(code, /from "reads-own-files"/);
    assert.deepEqual(bundle.externals, [
      { name: "addon", dir: path.join(dir, "node_modules/addon") },
      { name: "reads-own-files", dir: path.join(dir, "node_modules/reads-own-files") },
    ]);
  });

  test("without externals, one self-contained module", async (t) => {
    const dir = app(t);
    writeFileSync(path.join(dir, "only-plain.ts"), 'import plain from "plain";\nconsole.log(plain);\n');
    const bundle = await bundleApp(path.join(dir, "only-plain.ts"), dir);
    assert.deepEqual(bundle.externals, []);
    assert.doesNotMatch(Buffer.from(bundle.code).toString("utf8"), /from "plain"/);
  });
});
