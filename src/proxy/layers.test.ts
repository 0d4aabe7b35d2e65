import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";

/**
 * The proxy's folders are layers: each may import only the layers below it, and no file imports
 * itself back through others (type-only imports included: they are how circles start).
 */
const ROOT = dirname(new URL(import.meta.url).pathname);

/**
 * Folder -> the folders of src/proxy it may import from ("." is the folder's parent files). `http`
 * is the HTTP/1.1 grammar both parsers share; `client` is the HTTP server clients talk to, which
 * knows nothing of routes or machines (the exchanges take its requests through
 * exchange/client-side.ts, which node's server satisfies too).
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  http: [],
  routes: [],
  client: ["http"],
  upstream: ["routes", "http"],
  exchange: ["routes", "upstream"],
};

/** Every non-test .ts file under src/proxy, by path relative to it, with the src/proxy files it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const visit = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) visit(path);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") && entry.name !== "test-support.ts") {
        const text = readFileSync(path, "utf8");
        const imports = [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^"';]*?from\s*"(\.{1,2}\/[^"]+)"/g)]
          .map((m) => relative(ROOT, resolve(dir, m[1]!)))
          .filter((target) => !target.startsWith(".."));
        graph.set(relative(ROOT, path), imports);
      }
    }
  };
  visit(ROOT);
  return graph;
}

function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const walk = (file: string): void => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "open") {
      found.push([...stack.slice(stack.indexOf(file)), file]);
      return;
    }
    state.set(file, "open");
    stack.push(file);
    for (const next of graph.get(file) ?? []) walk(next);
    stack.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) walk(file);
  return found;
}

test("the proxy's files import no circle", () => {
  const graph = importGraph();
  assert.ok(graph.has("exchange/exchange.ts") && graph.has("upstream/upstream.ts") && graph.has("client/http-server.ts"), "the graph sees the proxy's files");
  assert.deepEqual(cycles(graph).map((c) => c.join(" -> ")), []);
});

test("http, routes, client, upstream and exchange import only the layers below them", () => {
  const wrong: string[] = [];
  for (const [file, imports] of importGraph()) {
    const folder = file.includes("/") ? file.slice(0, file.indexOf("/")) : ".";
    const allowed = MAY_IMPORT[folder];
    if (!allowed) continue;
    for (const target of imports) {
      const targetFolder = target.includes("/") ? target.slice(0, target.indexOf("/")) : ".";
      if (targetFolder !== folder && !allowed.includes(targetFolder)) wrong.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test("the cycle finder finds a circle", () => {
  const graph = new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]]]);
  assert.deepEqual(cycles(graph), [["a.ts", "b.ts", "c.ts", "a.ts"]]);
});
