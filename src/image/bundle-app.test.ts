import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
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

  test("without externals, one self-contained CommonJS script", async (t) => {
    const dir = app(t);
    writeFileSync(path.join(dir, "only-plain.ts"), 'import plain from "plain";\nconsole.log(plain);\n');
    const bundle = await bundleApp(path.join(dir, "only-plain.ts"), dir);
    assert.deepEqual(bundle.externals, []);
    assert.equal(bundle.format, "cjs");
    assert.doesNotMatch(Buffer.from(bundle.code).toString("utf8"), /from "plain"|require\("plain"\)/);
  });

  test("CommonJS when it can be; an ES module for top-level await, import.meta beyond url, or a declared external", async (t) => {
    const dir = app(t);
    const run = (file: string, code: Uint8Array): string => {
      writeFileSync(path.join(dir, file), code);
      return execFileSync(process.execPath, [path.join(dir, file)], { encoding: "utf8", timeout: 30_000 });
    };
    writeFileSync(path.join(dir, "url.ts"), "console.log(new URL(import.meta.url).pathname.endsWith('/out-url.cjs'));\n");
    const url = await bundleApp(path.join(dir, "url.ts"), dir);
    assert.equal(url.format, "cjs");
    assert.equal(run("out-url.cjs", url.code), "true\n", "import.meta.url is the script's own URL");

    writeFileSync(path.join(dir, "tla.ts"), "await Promise.resolve();\nconsole.log('tla');\n");
    const tla = await bundleApp(path.join(dir, "tla.ts"), dir);
    assert.equal(tla.format, "esm");
    assert.equal(run("out-tla.mjs", tla.code), "tla\n");

    writeFileSync(path.join(dir, "dirname.ts"), "console.log(typeof import.meta.dirname);\n");
    assert.equal((await bundleApp(path.join(dir, "dirname.ts"), dir)).format, "esm");

    const declared = await bundleApp(path.join(dir, "main.ts"), dir, ["reads-own-files"]);
    assert.equal(declared.format, "esm", "a declared external may be ESM-only");
    const nativeOnly = await bundleApp(path.join(dir, "main.ts"), dir);
    assert.equal(nativeOnly.format, "cjs", "native addons are CommonJS: require() loads them");
    assert.match(Buffer.from(nativeOnly.code).toString("utf8"), /require\("addon\/lib\/x\.js"\)/);
  });
});
