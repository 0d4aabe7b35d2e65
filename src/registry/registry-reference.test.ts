import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isLoopbackRegistry, manifestSelector, parseRegistryReferenceOrUndefined, PINNED_REFERENCE_PATTERN, REGISTRY_REFERENCE_PATTERN } from "./registry-reference.ts";
import { IMAGE_REFERENCE_PATTERN } from "../image/image-reference.ts";

const D = "sha256:" + "ab".repeat(32);

describe("registry references", () => {
  it("parses registry, repository, tag and digest", () => {
    assert.deepEqual(parseRegistryReferenceOrUndefined("127.0.0.1:5000/hello-ts"), { registry: "127.0.0.1:5000", repository: "hello-ts" });
    assert.deepEqual(parseRegistryReferenceOrUndefined("registry.example/team/app:v1.2"), { registry: "registry.example", repository: "team/app", tag: "v1.2" });
    assert.deepEqual(parseRegistryReferenceOrUndefined(`localhost/app@${D}`), { registry: "localhost", repository: "app", digest: D });
    assert.deepEqual(parseRegistryReferenceOrUndefined(`[::1]:5000/a/b:t@${D}`), { registry: "[::1]:5000", repository: "a/b", tag: "t", digest: D });
  });

  it("a pinned reference asks for its digest, else its tag, else latest", () => {
    assert.equal(manifestSelector(parseRegistryReferenceOrUndefined(`r.io/a:t@${D}`)!), D);
    assert.equal(manifestSelector(parseRegistryReferenceOrUndefined("r.io/a:t")!), "t");
    assert.equal(manifestSelector(parseRegistryReferenceOrUndefined("r.io/a")!), "latest");
  });

  const bad = [
    "hello-ts", // a local image name: no registry
    "app/x", // first part does not look like a host
    "r.io/../etc", "r.io/a/../b", "r.io/./a", "r.io//a", "r.io/a/", "r.io/A", "r.io/a:", "r.io/a:-t", "r.io/a@sha256:abc",
    `r.io/a@sha512:${"ab".repeat(64)}`, "r.io:99999/a", "r.io:0/a", "r.io/a b", "r.io/a\n", "r.io/a\0", "http://r.io/a", "r.io/a?x=1", "r.io/a#x",
    "-r.io/a", "r.io/" + "a".repeat(260), "user@r.io/a",
  ];
  for (const text of bad) {
    it(`refuses ${JSON.stringify(text.slice(0, 40))}`, () => assert.equal(parseRegistryReferenceOrUndefined(text), undefined));
  }

  it("the schema patterns agree with the parser, and a local name is never a registry reference", () => {
    const registry = new RegExp(REGISTRY_REFERENCE_PATTERN);
    const pinned = new RegExp(PINNED_REFERENCE_PATTERN);
    const local = new RegExp(IMAGE_REFERENCE_PATTERN);
    for (const ok of ["127.0.0.1:5000/hello-ts", "r.io/a:t", `r.io/a@${D}`]) assert.ok(registry.test(ok), ok);
    for (const b of bad.filter((x) => x.length < 253)) assert.ok(!registry.test(b), b);
    assert.ok(pinned.test(`r.io/a@${D}`) && !pinned.test("r.io/a:t"));
    assert.ok(!registry.test("hello-ts") && local.test("hello-ts"));
  });

  it("only loopback registries are spoken to over plain HTTP", () => {
    for (const r of ["127.0.0.1:5000", "localhost", "localhost:80", "[::1]:5000", "127.9.9.9"]) assert.ok(isLoopbackRegistry(r), r);
    for (const r of ["r.io", "10.0.0.1:5000", "127.0.0.1.nip.io", "localhost.example", "[::2]"]) assert.ok(!isLoopbackRegistry(r), r);
  });
});
