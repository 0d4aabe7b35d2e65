import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { test, type TestContext } from "node:test";
import { ApiError } from "./api-error.ts";
import { PithClient } from "./pith-client.ts";

async function serve(t: TestContext, handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

test("short requests: JSON both ways, the token sent, an error body becomes the API's error", async (t) => {
  const seen: { method?: string; auth?: string; body: string }[] = [];
  const { url } = await serve(t, (request, response) => {
    let body = "";
    request.on("data", (c: Buffer) => (body += c.toString()));
    request.on("end", () => {
      seen.push({ method: request.method, auth: request.headers.authorization, body });
      if (request.url === "/api/v1/services/web/scale") {
        response.writeHead(409, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "Conflict", message: "web is autoscaled", hint: "change min/max" } }));
      } else response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ items: [], metadata: { resourceVersion: "3" } }));
    });
  });
  const client = new PithClient({ server: url, token: "s3cret" });
  assert.deepEqual(await client.list("Service"), { items: [], metadata: { resourceVersion: "3" } });
  await assert.rejects(client.scale("web", 2), (e: unknown) => e instanceof ApiError && e.status === 409 && e.code === "Conflict" && e.hint === "change min/max");
  assert.deepEqual(seen.map((s) => [s.method, s.auth, s.body]), [["GET", "Bearer s3cret", ""], ["POST", "Bearer s3cret", '{"replicas":2}']]);
});

test("a server that does not answer is a Timeout; a caller's abort is the caller's", async (t) => {
  const { url } = await serve(t, () => {}); // never answers
  const slow = new PithClient({ server: url, token: "t", timeoutMs: 200 });
  await assert.rejects(slow.list("Service"), (e: unknown) => e instanceof ApiError && e.code === "Timeout");
  const abort = new AbortController();
  const listing = new PithClient({ server: url, token: "t" }).list("Service", { signal: abort.signal });
  abort.abort(new Error("changed my mind"));
  await assert.rejects(listing, /changed my mind/);
});

test("after the server closes the idle pooled connection, the next request goes on a fresh one", async (t) => {
  let requests = 0;
  const { server, url } = await serve(t, (_request, response) => {
    requests++;
    response.writeHead(200, { "content-type": "application/json", connection: "keep-alive" }).end("{}");
  });
  const client = new PithClient({ server: url, token: "t" });
  await client.get("Service", "a");
  // The server drops the idle kept-alive socket without the client noticing first.
  const idle = new Promise<void>((resolve) => server.once("connection", () => resolve()));
  server.closeIdleConnections();
  await client.get("Service", "b");
  await idle;
  assert.equal(requests, 2);
});
