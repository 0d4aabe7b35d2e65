import assert from "node:assert/strict";
import { test } from "node:test";
import { buildWebBundle } from "./bundle.ts";

// The GUI shares the API's schemas (api/schemas): this is where a server-only import among them
// shows up (esbuild refuses node: modules for the browser), before any browser is involved.
test("the GUI bundles for the browser, with no code the page's CSP would refuse to run", async () => {
  const { assets } = await buildWebBundle();
  const js = assets.get("app.js")?.body ?? "";
  assert.ok(js.length > 1000);
  // script-src 'self' without 'unsafe-eval': generated code (TypeBox's compiler) would throw.
  assert.doesNotMatch(js, /\bFunction\(|\beval\(/);
  // Node's globals do not exist in a browser: a shared rule using one throws on the page only.
  assert.doesNotMatch(js, /\bBuffer\.(byteLength|from|alloc|concat)\b/);
  // The editor checks manifests with the API's own schema; its rules come along.
  assert.match(js, /names starting with PITH_ are reserved/);
});
