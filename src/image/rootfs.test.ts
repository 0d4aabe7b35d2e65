import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { destinationClash } from "./rootfs.ts";

describe("declared files beside what the image holds", () => {
  const taken = new Map([["/app", "dir"], ["/lib/x86_64-linux-gnu/libc.so.6", "file"], ["/app/node_modules", "symlink"]] as const);

  test("a free path is fine, also in a directory the image has", () => {
    assert.equal(destinationClash("/srv/static/a.css", taken), undefined);
    assert.equal(destinationClash("/lib/x86_64-linux-gnu/libextra.so", taken), undefined);
  });

  test("the same path, a path below a file or link, or a path that is a directory are refused", () => {
    assert.match(destinationClash("/lib/x86_64-linux-gnu/libc.so.6", taken)!, /already has/);
    assert.match(destinationClash("/app/node_modules/x.js", taken)!, /\/app\/node_modules is a symlink/);
    assert.match(destinationClash("/lib", taken)!, /is a directory in the image/);
    assert.match(destinationClash("/app", taken)!, /already has/);
  });
});
