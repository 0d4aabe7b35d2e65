import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, test } from "node:test";
import { ApiError } from "./api-error.ts";
import { PithClient } from "./pith-client.ts";

describe("ApiError", () => {
  test("connection refused names the server and how to start it", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const client = new PithClient({ server: `http://127.0.0.1:${port}/`, token: "t" });
    await assert.rejects(client.list("Service"), (e: ApiError) => {
      assert.ok(e instanceof ApiError);
      assert.equal(e.status, 0);
      assert.equal(e.message, `cannot reach the Pith control plane at http://127.0.0.1:${port}: connection refused`);
      assert.equal(e.hint, "start it with `pith up`, or set --server / PITH_SERVER");
      return true;
    });
  });

  test("details are part of the message", () => {
    const e = new ApiError(400, "Invalid", "Service web is invalid", { details: [{ path: "spec.replicas", message: "must be >= 0" }] });
    assert.equal(e.message, "Service web is invalid\n  spec.replicas: must be >= 0");
    const pointers = new ApiError(400, "Invalid", "bad", { details: [{ path: "/spec/hosts/0", message: "must not be empty" }, { path: "", message: "x" }] });
    assert.equal(pointers.message, "bad\n  spec.hosts[0]: must not be empty\n  (the object): x");
    assert.equal(e.kind, "user");
    assert.equal(e.code, "Invalid");
  });
});
