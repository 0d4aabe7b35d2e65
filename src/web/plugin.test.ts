import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestServer, type TestServer } from "../api/test-support.ts";
import { webUi } from "./plugin.ts";

describe("the web GUI's routes", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ server: { openRoutes: webUi } });
  });
  after(() => server.close());

  test("the page and its assets need no token, and say where they may load from", async () => {
    const page = await fetch(`${server.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    const html = await page.text();
    assert.match(html, /\/ui\/app\.js/);
    assert.doesNotMatch(html, /https?:\/\//, "nothing from a CDN");
    const js = await fetch(`${server.url}/ui/app.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type") ?? "", /javascript/);
    const etag = js.headers.get("etag")!;
    assert.ok((await js.text()).length > 1000);
    assert.equal((await fetch(`${server.url}/ui/app.js`, { headers: { "if-none-match": etag } })).status, 304);
    assert.equal((await fetch(`${server.url}/ui/app.css`)).status, 200);
    assert.equal((await fetch(`${server.url}/ui/favicon.svg`)).status, 200);
    assert.equal((await fetch(`${server.url}/ui/nothing.js`)).status, 404);
  });

  test("everything else still needs the token, also with a query token", async () => {
    for (const path of ["/api/v1/services", "/metrics", "/openapi.json", "/api/v1/services?token=" + server.token, "/ui", "/index.html"]) {
      assert.equal((await fetch(server.url + path)).status, 401, path);
    }
    assert.equal((await fetch(`${server.url}/`, { method: "DELETE" })).status, 401, "only GET is open");
  });

  test("inspect: 404 for an unknown image, or one missing from the local store", async () => {
    assert.equal((await server.call("GET", "/api/v1/images/nothing/inspect")).status, 404);
    await server.call("POST", "/api/v1/images", {
      apiVersion: "pith.dev/v1",
      kind: "Image",
      metadata: { name: "ghost" },
      spec: { digest: `sha256:${"0".repeat(64)}`, runtime: "native", memoryMiB: 64, vcpus: 1, listen: [], egress: [], storedBytes: 1 },
    });
    const response = await server.call("GET", "/api/v1/images/ghost/inspect");
    assert.equal(response.status, 404);
    assert.match(((await response.json()) as { error: { message: string } }).error.message, /not in the control plane host's image store/);
  });
});
