import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, test, type TestContext } from "node:test";
import { parseAppManifest } from "./app-manifest.ts";
import { FAKE_ELF, onlyProblem, problemsIn, tempApp, yaml } from "./test-support.ts";

/** An app with a config file, a static tree and a program, so only the rule under test fails. */
const app = (t: TestContext) =>
  tempApp(t, {
    "main.ts": "",
    "bin/server": FAKE_ELF,
    "config/app.conf": "a = 1\n",
    "static/index.html": "<p>hi</p>\n",
    "static/css/site.css": "p {}\n",
    "static/.well-known/x": "x\n",
    "tools/run": "#!/bin/sh\n",
  });

const files = (dir: string, ...lines: string[]) =>
  parseAppManifest(yaml("name: a", "entry: main.ts", "files:", ...lines), path.join(dir, "pith.yaml")).files;

const dests = (dir: string, ...lines: string[]) => files(dir, ...lines).map((f) => [f.from, f.dest]);

describe("files: where each file goes", () => {
  test("a bare path keeps its place under /app, the app's working directory", (t) => {
    const dir = app(t);
    const [file] = files(dir, "  - config/app.conf");
    const { dev, ino } = statSync(path.join(dir, "config/app.conf"));
    assert.deepEqual(file, { from: "config/app.conf", source: path.join(dir, "config/app.conf"), dest: "/app/config/app.conf", executable: false, line: 4, identity: { dev, ino } });
  });

  test("one file to an exact dest, or into a dest ending in /", (t) => {
    const dir = app(t);
    assert.deepEqual(dests(dir, "  - { src: config/app.conf, dest: /etc/app.conf }", "  - { src: config/app.conf, dest: /srv/ }"),
      [["config/app.conf", "/etc/app.conf"], ["config/app.conf", "/srv/app.conf"]]);
  });

  test("a glob's matches keep their path below its fixed part, hidden files included, sorted", (t) => {
    const dir = app(t);
    assert.deepEqual(dests(dir, '  - { src: "static/**", dest: /srv/static }'), [
      ["static/.well-known/x", "/srv/static/.well-known/x"],
      ["static/css/site.css", "/srv/static/css/site.css"],
      ["static/index.html", "/srv/static/index.html"],
    ]);
    assert.deepEqual(dests(dir, '  - "static/*.html"'), [["static/index.html", "/app/static/index.html"]]);
  });

  test("a directory means everything beneath it", (t) => {
    const dir = app(t);
    assert.deepEqual(dests(dir, "  - { src: static/css, dest: /srv/css }"), [["static/css/site.css", "/srv/css/site.css"]]);
  });

  test("an executable stays executable (0555 in the image), everything else 0444", (t) => {
    const dir = app(t);
    execFileSync("chmod", ["755", path.join(dir, "tools/run")]);
    assert.deepEqual(files(dir, "  - tools/run", "  - config/app.conf").map((f) => f.executable), [true, false]);
  });

  test("a symlink inside the app is followed: its target's bytes are shipped", (t) => {
    const dir = app(t);
    symlinkSync("app.conf", path.join(dir, "config/current.conf"));
    const [file] = files(dir, "  - config/current.conf");
    assert.equal(file!.source, path.join(dir, "config/app.conf"));
    assert.equal(file!.dest, "/app/config/current.conf");
  });
});

describe("files: what is refused, at its line", () => {
  test("a glob matching nothing", (t) => {
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "files:", "  - config/app.conf", '  - "assets/*.png"'), app(t), 5, '"assets/*.png" matches no file');
    assert.equal(p.path, "files[1]");
  });

  test("a path that does not exist", (t) => {
    onlyProblem(yaml("name: a", "entry: main.ts", "files: [config/missing.conf]"), app(t), 3, '"config/missing.conf" does not exist');
  });

  test("a path leading out of the app, or absolute", (t) => {
    const dir = app(t);
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "files:", "  - ../secrets.txt"), dir, 4, '"../secrets.txt" leads out of the app directory');
    assert.match(p.hint!, /copy the file into it/);
    onlyProblem(yaml("name: a", "entry: main.ts", "files:", "  - config/../../x/**"), dir, 4, "leads out of the app directory");
    onlyProblem(yaml("name: a", "entry: main.ts", "files:", "  - /etc/passwd"), dir, 4, '"/etc/passwd" is absolute');
  });

  test("a symlink whose target leaves the app, even reached through a glob", (t) => {
    const dir = app(t);
    symlinkSync("/etc/hostname", path.join(dir, "static/host"));
    onlyProblem(yaml("name: a", "entry: main.ts", "files:", '  - "static/**"'), dir, 4, '"static/host" leads through a symlink to /etc/hostname, outside the app directory');
    // A pattern that does not reach it is not affected.
    assert.deepEqual(dests(dir, '  - "static/*.html"'), [["static/index.html", "/app/static/index.html"]]);
  });

  test("a symlinked directory leading out of the app", (t) => {
    const dir = app(t);
    symlinkSync("/etc", path.join(dir, "etc"));
    onlyProblem(yaml("name: a", "entry: main.ts", "files:", "  - etc/hostname"), dir, 4, "outside the app directory");
  });

  test("a broken symlink and a special file", (t) => {
    const dir = app(t);
    symlinkSync("nowhere", path.join(dir, "static/dangling"));
    onlyProblem(yaml("name: a", "entry: main.ts", "files: [static/dangling]"), dir, 3, "is a broken symlink");
    execFileSync("mkfifo", [path.join(dir, "config/pipe")]);
    onlyProblem(yaml("name: a", "entry: main.ts", "files: [config/pipe]"), dir, 3, '"config/pipe" is a fifo, not a regular file');
  });

  test("destinations over Pith's own files", (t) => {
    const dir = app(t);
    const refused = (dest: string, fragment: string, source = "entry: main.ts") =>
      onlyProblem(yaml("name: a", source, "files:", `  - { src: config/app.conf, dest: ${dest} }`), dir, 4, fragment);
    refused("/init", "Pith's init");
    refused("/pith/env", "/pith is Pith's");
    refused("/app/main.mjs", "it is the app itself");
    refused("/app/main.cjs", "it is the app itself");
    refused("/app/server", "it is the app itself", "binary: bin/server");
    refused("/runtime/node", "/runtime is Pith's");
    refused("/dev/console", "/dev is Pith's");
    refused("/tmp/x", "/tmp is Pith's");
    refused("/app/node_modules/x/index.js", "external Node packages");
  });

  test("a dest that is not absolute, or has . or ..", (t) => {
    const dir = app(t);
    onlyProblem(yaml("name: a", "entry: main.ts", "files:", "  - { src: config/app.conf, dest: etc/app.conf }"), dir, 4, "is not absolute");
    onlyProblem(yaml("name: a", "entry: main.ts", "files:", "  - { src: config/app.conf, dest: /srv/../init }"), dir, 4, 'has a "." or ".." component');
  });

  test("two files for one destination, and a file where a directory must be", (t) => {
    const dir = app(t);
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "files:", "  - { src: config/app.conf, dest: /etc/x }", "  - { src: static/index.html, dest: /etc/x }"),
      dir, 5, '/etc/x would get both "config/app.conf" (line 4) and "static/index.html"');
    assert.equal(p.path, "files[1]");
    const problems = problemsIn(yaml("name: a", "entry: main.ts", "files:", "  - { src: config/app.conf, dest: /srv }", '  - { src: "static/**", dest: /srv }'), dir);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.message, /\/srv would be a file \("config\/app.conf", line 4\) and a directory/);
  });

  test("wrong shapes: a scalar, a mapping without src, an unknown key", (t) => {
    const dir = app(t);
    onlyProblem(yaml("name: a", "entry: main.ts", "files: config/app.conf"), dir, 3, "expected a list of paths or globs");
    onlyProblem(yaml("name: a", "entry: main.ts", "files:", "  - { dest: /srv }"), dir, 4, "src is missing");
    const p = onlyProblem(yaml("name: a", "entry: main.ts", "files:", "  - { src: config/app.conf, dst: /srv }"), dir, 4, 'unknown field "dst"');
    assert.equal(p.hint, 'did you mean "dest"?');
  });

  test("every bad item is reported in one pass", (t) => {
    const problems = problemsIn(yaml("name: a", "entry: main.ts", "files:", "  - nothing/*", "  - ../x", "  - config/app.conf"), app(t));
    assert.deepEqual(problems.map((p) => p.line), [4, 5]);
  });
});

describe("node:", () => {
  test("external names installed packages, sorted", (t) => {
    const dir = app(t);
    for (const name of ["zlib-thing", "@scope/pkg"]) {
      mkdirSync(path.join(dir, "node_modules", name), { recursive: true });
      writeFileSync(path.join(dir, "node_modules", name, "package.json"), "{}");
    }
    const m = parseAppManifest(yaml("name: a", "entry: main.ts", "node:", "  external: [zlib-thing, '@scope/pkg']"), path.join(dir, "pith.yaml"));
    assert.deepEqual(m.node, { external: ["@scope/pkg", "zlib-thing"], codeCache: false });
  });

  test("codeCache is true or false, off when left out", (t) => {
    const dir = app(t);
    assert.equal(parseAppManifest(yaml("name: a", "entry: main.ts", "node: { codeCache: true }"), path.join(dir, "pith.yaml")).node.codeCache, true);
    assert.equal(parseAppManifest(yaml("name: a", "entry: main.ts", "node: { codeCache: false }"), path.join(dir, "pith.yaml")).node.codeCache, false);
    assert.equal(parseAppManifest(yaml("name: a", "entry: main.ts", "node: {}"), path.join(dir, "pith.yaml")).node.codeCache, false);
    onlyProblem(yaml("name: a", "entry: main.ts", "node: { codeCache: yes please }"), dir, 3, "must be true or false");
    onlyProblem(yaml("name: a", "entry: main.ts", "node: { codeCache: 1 }"), dir, 3, "must be true or false");
    onlyProblem(yaml("name: a", "binary: bin/server", "node: { codeCache: true }"), dir, 3, "node: applies to entry apps only");
  });

  test("refuses what is not installed, bad names, duplicates, and binary apps", (t) => {
    const dir = app(t);
    onlyProblem(yaml("name: a", "entry: main.ts", "node:", "  external: [left-pad]"), dir, 4, 'package "left-pad" is not installed');
    onlyProblem(yaml("name: a", "entry: main.ts", "node:", "  external: [../evil]"), dir, 4, '"../evil" is not an npm package name');
    onlyProblem(yaml("name: a", "binary: bin/server", "node: { external: [] }"), dir, 3, "node: applies to entry apps only");
    onlyProblem(yaml("name: a", "entry: main.ts", "node: { externals: [x] }"), dir, 3, 'unknown field "externals"');
  });
});
