import assert from "node:assert/strict";
import { test } from "node:test";
import { startTestServer } from "../api/test-support.ts";
import { PithClient } from "../client/index.ts";
import { until } from "./test-support.ts";
import { startProxy } from "./run-proxy.ts";

test("an access log that cannot be written is reported, and the proxy keeps serving", async (t) => {
  const api = await startTestServer();
  t.after(() => api.close());
  const errors: string[] = [];
  // A directory: opening it for appending fails, as a full disk or a removed directory would.
  const proxy = await startProxy({
    client: new PithClient({ server: api.url, token: api.token }),
    host: "127.0.0.1",
    port: 0,
    report: () => {},
    accessLogPath: api.dir,
    onError: (e) => errors.push(String(e)),
  });
  t.after(() => proxy.close());
  await until(() => errors.length > 0, 5000, "the log's error");
  assert.match(errors[0]!, /cannot write the access log .*EISDIR/);
  const response = await fetch(proxy.url, { headers: { host: "nobody.localhost" } });
  assert.equal(response.status, 404);
  await response.text();
});
