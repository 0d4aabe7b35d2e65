import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { globBase, globCouldMatchBelow, globMatches, hasGlob } from "./glob.ts";

describe("files: globs", () => {
  test("* and ? stay within one name; ** spans any number of directories, none included", () => {
    assert.ok(globMatches("static/*.css", "static/site.css"));
    assert.ok(!globMatches("static/*.css", "static/css/site.css"));
    assert.ok(globMatches("static/?.txt", "static/a.txt"));
    assert.ok(!globMatches("static/?.txt", "static/ab.txt"));
    assert.ok(globMatches("static/**", "static/a"));
    assert.ok(globMatches("static/**", "static/css/deep/a.css"));
    assert.ok(globMatches("static/**/*.css", "static/a.css"));
    assert.ok(globMatches("static/**/*.css", "static/x/y/a.css"));
    assert.ok(!globMatches("static/**/*.css", "other/a.css"));
  });

  test("* matches hidden names; nothing but * and ? is special", () => {
    assert.ok(globMatches("conf/*", "conf/.env"));
    assert.ok(globMatches("data/[draft].txt", "data/[draft].txt"));
    assert.ok(!globMatches("data/[draft].txt", "data/d.txt"));
    assert.ok(globMatches("a+b(1)/x.y", "a+b(1)/x.y"));
    assert.ok(!globMatches("a.b", "axb"));
  });

  test("a walk descends only where a match can be", () => {
    assert.ok(globCouldMatchBelow("static/**", "static"));
    assert.ok(globCouldMatchBelow("static/*/x", "static/css"));
    assert.ok(!globCouldMatchBelow("static/*.css", "static/css"));
    assert.ok(!globCouldMatchBelow("static/**", "secrets"));
    assert.ok(globCouldMatchBelow("**/*.json", "any/where"));
  });

  test("the fixed part of a pattern is where its walk starts and what dest replaces", () => {
    assert.equal(globBase("static/**"), "static");
    assert.equal(globBase("a/b/*.txt"), "a/b");
    assert.equal(globBase("*.conf"), "");
    assert.equal(globBase("plain/file"), "plain/file");
    assert.ok(hasGlob("a/*") && hasGlob("a?") && !hasGlob("a/b"));
  });

  test("many ** against a deep path ends quickly", () => {
    const started = performance.now();
    assert.ok(!globMatches("**/a/**/a/**/a/**/b", Array.from({ length: 60 }, () => "a").join("/")));
    assert.ok(performance.now() - started < 2000);
  });
});
