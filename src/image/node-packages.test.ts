import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { isPithError } from "../shared/errors.ts";
import { findPackageDir, isBuildLeftover, isNativePackage, packageNameOf, planNodeModules } from "./node-packages.ts";

/** An app directory with a node_modules tree: package name -> { file: contents }, package.json included. */
function tree(t: TestContext, packages: Record<string, Record<string, string>>): string {
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), "pith-node-modules-")));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [pkg, files] of Object.entries(packages)) {
    for (const [name, content] of Object.entries(files)) {
      const file = path.join(dir, "node_modules", pkg, name);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, content);
    }
  }
  return dir;
}

const pkg = (deps: Record<string, string> = {}, optional: Record<string, string> = {}) =>
  JSON.stringify({ dependencies: deps, optionalDependencies: optional });

describe("node packages that cannot be bundled", () => {
  test("a package name from an import; built-ins and relative paths are none", () => {
    assert.equal(packageNameOf("better-sqlite3"), "better-sqlite3");
    assert.equal(packageNameOf("lodash/fp/map"), "lodash");
    assert.equal(packageNameOf("@scope/pkg/sub"), "@scope/pkg");
    assert.equal(packageNameOf("node:fs"), undefined);
    assert.equal(packageNameOf("fs"), undefined);
    assert.equal(packageNameOf("./x"), undefined);
  });

  test("native: a binding.gyp or a compiled .node file", (t) => {
    const dir = tree(t, {
      gyp: { "package.json": pkg(), "binding.gyp": "{}" },
      prebuilt: { "package.json": pkg(), "prebuilds/linux-x64/addon.node": "\x7fELF" },
      plain: { "package.json": pkg(), "index.js": "" },
    });
    assert.ok(isNativePackage(path.join(dir, "node_modules/gyp")));
    assert.ok(isNativePackage(path.join(dir, "node_modules/prebuilt")));
    assert.ok(!isNativePackage(path.join(dir, "node_modules/plain")));
  });

  test("build leftovers: node-gyp's tree except its addons, C sources, objects, build files", () => {
    for (const leftover of ["build/Release/obj.target/x.o", "build/Release/obj.target/addon.node", "build/Makefile", "deps/sqlite3/sqlite3.c", "src/addon.cpp", "include/x.h", "binding.gyp", "lib/x.a"]) {
      assert.ok(isBuildLeftover(leftover), leftover);
    }
    for (const kept of ["build/Release/addon.node", "lib/index.js", "package.json", "data/words.txt", "build.js"]) assert.ok(!isBuildLeftover(kept), kept);
  });

  test("the package and its own dependencies, nested ones nested, nothing else", (t) => {
    const dir = tree(t, {
      addon: { "package.json": pkg({ bindings: "1", helper: "1" }, { "opt-missing": "1" }), "lib/index.js": "", "build/Release/addon.node": "x", "build/Release/obj/a.o": "x", "src/a.cc": "x" },
      bindings: { "package.json": pkg(), "index.js": "" },
      helper: { "package.json": pkg({ bindings: "1" }), "index.js": "" },
      "addon/node_modules/helper": { "package.json": pkg(), "nested.js": "" },
      unrelated: { "package.json": pkg(), "index.js": "" },
    });
    const files = planNodeModules([{ name: "addon", dir: path.join(dir, "node_modules/addon") }]);
    assert.deepEqual(files.map((f) => f.rel), [
      "addon/build/Release/addon.node",
      "addon/lib/index.js",
      "addon/node_modules/helper/nested.js",
      "addon/node_modules/helper/package.json",
      "addon/package.json",
      "bindings/index.js",
      "bindings/package.json",
    ]);
  });

  test("a required dependency that is missing, and a symlink leaving its package, are refused", (t) => {
    const dir = tree(t, { a: { "package.json": pkg({ gone: "1" }) }, b: { "package.json": pkg() } });
    assert.throws(() => planNodeModules([{ name: "a", dir: path.join(dir, "node_modules/a") }]),
      (e) => isPithError(e) && e.code === "NODE_PACKAGE_MISSING" && /gone/.test(e.message));
    symlinkSync("/etc/hostname", path.join(dir, "node_modules/b/leak.txt"));
    assert.throws(() => planNodeModules([{ name: "b", dir: path.join(dir, "node_modules/b") }]),
      (e) => isPithError(e) && e.code === "NODE_PACKAGE_UNSAFE" && /outside its package/.test(e.message));
  });

  test("Node's lookup walks up from the importing directory", (t) => {
    const dir = tree(t, { x: { "package.json": pkg() } });
    mkdirSync(path.join(dir, "src/deep"), { recursive: true });
    assert.equal(findPackageDir("x", path.join(dir, "src/deep")), path.join(dir, "node_modules/x"));
    assert.equal(findPackageDir("y", path.join(dir, "src/deep")), undefined);
  });
});
