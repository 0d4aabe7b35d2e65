import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { DocumentsError, parseResourceDocuments } from "./documents.ts";

const problemsOf = (text: string, file = "web.yaml"): string[] => {
  try {
    parseResourceDocuments(text, file, { baseDir: "/nonexistent" });
  } catch (e) {
    assert.ok(e instanceof DocumentsError, String(e));
    return e.problems.map((p) => `doc ${p.index}${p.item !== undefined ? `.${p.item}` : ""} line ${p.line}: ${p.message}`);
  }
  assert.fail("expected a DocumentsError");
};

describe("resource documents", () => {
  const dir = mkdtempSync(join(tmpdir(), "pith-docs-"));
  mkdirSync(join(dir, "hello"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("several YAML documents; metadata reduced to name and labels; status dropped", () => {
    const docs = parseResourceDocuments(
      [
        "# web and its node",
        "apiVersion: pith.dev/v1",
        "kind: Service",
        "metadata:",
        "  name: web",
        "  labels: { tier: front }",
        "  uid: 123",
        "  resourceVersion: '9'",
        "spec:",
        "  image: hello-ts",
        "  replicas: 2",
        "status: { ready: 2 }",
        "---",
        "---",
        "apiVersion: pith.dev/v1",
        "kind: Node",
        "metadata: { name: n1 }",
        "spec: { capacity: { memoryMiB: 1024, vcpus: 2 }, accelerator: tcg }",
        "",
      ].join("\n"),
      "web.yaml",
    );
    assert.equal(docs.length, 2);
    assert.deepEqual(docs[0], {
      index: 1,
      line: 2,
      input: { apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "web", labels: { tier: "front" } }, spec: { image: "hello-ts", replicas: 2 } },
    });
    assert.equal(docs[1]!.index, 3);
    assert.equal(docs[1]!.line, 15);
    assert.equal(docs[1]!.input.kind, "Node");
  });

  test("JSON, a JSON array and a List are read item by item", () => {
    const one = { apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "a" }, spec: { image: "x" } };
    const two = { ...one, metadata: { name: "b" } };
    assert.equal(parseResourceDocuments(JSON.stringify(one), "a.json").length, 1);
    const list = parseResourceDocuments(JSON.stringify({ apiVersion: "pith.dev/v1", kind: "ServiceList", metadata: {}, items: [one, two] }, null, 2), "l.json");
    assert.deepEqual(list.map((d) => [d.index, d.item, d.input.metadata.name]), [[1, 1, "a"], [1, 2, "b"]]);
    assert.deepEqual(parseResourceDocuments(JSON.stringify([one, two]), "arr.json").map((d) => d.item), [1, 2]);
  });

  test("spec.app is resolved against the file's directory and not sent", () => {
    const [doc] = parseResourceDocuments("apiVersion: pith.dev/v1\nkind: Service\nmetadata: { name: web }\nspec: { app: ./hello, replicas: 1 }\n", join(dir, "web.yaml"));
    assert.equal(doc!.app, join(dir, "hello"));
    assert.deepEqual(doc!.input.spec, { replicas: 1 });
  });

  test("every problem is reported with file, document index and line", () => {
    const text = [
      "apiVersion: pith.dev/v1", // 1
      "kind: Service",
      "metadata: { name: web }",
      "spec: { image: x }",
      "---", // 5
      "kind: Service",
      "metadata: { labels: {} }",
      "spec: { image: x }",
      "---",
      "apiVersion: pith.dev/v1", // 10
      "kind: Servce",
      "metadata: { name: api }",
      "spec: {}",
      "---",
      "apiVersion: pith.dev/v1", // 15
      "kind: Service",
      "metadata:",
      "  name: bad",
      "   nested: oops",
      "spec: {}", // 20
    ].join("\n");
    assert.deepEqual(problemsOf(text), [
      "doc 2 line 6: apiVersion is missing",
      "doc 2 line 7: metadata.name is missing",
      'doc 3 line 11: unknown kind "Servce"',
      "doc 4 line 18: YAML syntax error: Nested mappings are not allowed in compact mappings",
    ]);
    const error = (() => {
      try {
        parseResourceDocuments(text, "web.yaml");
      } catch (e) {
        return e as DocumentsError;
      }
      return undefined;
    })();
    assert.match(error!.message, /^web\.yaml: document 2 \(line 6\): apiVersion is missing\n  fix: add apiVersion: pith\.dev\/v1/);
    assert.match(error!.message, /web\.yaml: document 3 \(line 11\): unknown kind "Servce"\n  fix: did you mean kind: Service\? \(kind is one of Service, Machine, Node, Image, Event, Secret\)/);
    assert.match(error!.message, /web\.yaml: document 4 \(line 18\): YAML syntax error/);
  });

  test("a YAML syntax error names its line", () => {
    const problems = problemsOf("apiVersion: pith.dev/v1\nkind: Service\nmetadata: { name: web\nspec: { image: x }\n");
    assert.equal(problems.length >= 1, true);
    assert.match(problems[0]!, /^doc 1 line \d: YAML syntax error/);
  });

  test("the other rules", () => {
    const doc = (body: string) => `apiVersion: pith.dev/v1\n${body}`;
    assert.deepEqual(problemsOf(doc("kind: service\nmetadata: { name: web }\nspec: { image: x }")), ['doc 1 line 2: unknown kind "service"']);
    assert.deepEqual(problemsOf(doc("kind: Service\nmetadata: { name: Web_1 }\nspec: { image: x }")), ['doc 1 line 3: metadata.name "Web_1" is invalid']);
    assert.deepEqual(problemsOf(doc("kind: Service\nmetadata: { name: web }")), ["doc 1 line 1: spec is missing"]);
    assert.deepEqual(problemsOf(doc("kind: Service\nmetadata: { name: web }\nspec: { replicas: 1 }")), ["doc 1 line 4: spec.image is missing"]);
    assert.deepEqual(problemsOf(doc("kind: Service\nmetadata: { name: web }\nspec: { image: x, app: ./a }")), ["doc 1 line 4: spec.image and spec.app are both set"]);
    assert.deepEqual(problemsOf(doc("kind: Service\nmetadata: { name: web }\nspec: { app: ./nope }")), ["doc 1 line 4: spec.app: /nonexistent/nope does not exist"]);
    assert.deepEqual(problemsOf(doc("apiVersion: v2\nkind: Node\nmetadata: { name: n }\nspec: {}").replace(/^apiVersion: pith.dev\/v1\n/, "")), ['doc 1 line 1: apiVersion "v2" is not supported']);
    assert.deepEqual(problemsOf(doc("kind: Node\nmetadata: { name: n, labels: { a: 1 } }\nspec: {}")), ["doc 1 line 3: metadata.labels must map names to strings"]);
    assert.deepEqual(problemsOf("- just\n- a list\n"), ["doc 1.1 line 1: expected an object with apiVersion, kind, metadata and spec", "doc 1.2 line 2: expected an object with apiVersion, kind, metadata and spec"]);
    const twice = doc("kind: Node\nmetadata: { name: n }\nspec: {}\n---\n") + doc("kind: Node\nmetadata: { name: n }\nspec: {}\n");
    assert.deepEqual(problemsOf(twice), ["doc 2 line 6: Node/n is already defined in document 1 (line 1)"]);
    assert.throws(() => parseResourceDocuments("# nothing here\n", "empty.yaml"), /empty\.yaml: no documents/);
  });

  test("delete -f does not need the app directory", () => {
    const [doc] = parseResourceDocuments("apiVersion: pith.dev/v1\nkind: Service\nmetadata: { name: web }\nspec: { app: ./gone }\n", "/x/web.yaml", { checkApps: false });
    assert.equal(doc!.app, "/x/gone");
  });
});
