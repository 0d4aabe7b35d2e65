import assert from "node:assert/strict";
import { test } from "node:test";
import { declarationOf, sameDeclaration } from "./declaration.ts";

test("a declaration is its spec and labels, key order and absent labels aside", () => {
  const stored = { spec: { image: "hello", replicas: 2, env: { A: "1", B: "2" } }, metadata: { labels: {} }, status: { ready: 2 } };
  assert.ok(sameDeclaration(stored, { spec: { env: { B: "2", A: "1" }, replicas: 2, image: "hello" }, metadata: {} }));
  assert.ok(!sameDeclaration(stored, { spec: { ...stored.spec, replicas: 3 }, metadata: {} }), "a spec change is a change");
  assert.ok(!sameDeclaration(stored, { spec: stored.spec, metadata: { labels: { team: "a" } } }), "a label change is a change");
  assert.ok(!sameDeclaration(stored, { spec: { ...stored.spec, env: { A: "1" } }, metadata: {} }), "a nested change is a change");
  assert.equal(declarationOf({ spec: { a: 1 }, metadata: { labels: { x: "y" } } }), '{"labels":{"x":"y"},"spec":{"a":1}}');
});
