import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { PithClient } from "../client/index.ts";
import type { Machine } from "../model/kinds.ts";
import { MAX_MACHINE_STATUSES } from "./routes/machine-statuses.ts";
import { startTestServer, type TestServer } from "./test-support.ts";

const machine = (name: string, node: string | undefined) => ({
  apiVersion: "pith.dev/v1",
  kind: "Machine",
  metadata: { name },
  spec: { service: "web", image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running", ...(node ? { node } : {}) },
  status: { phase: "pending" },
});

type Answer = { items: ({ name: string; object: Machine } | { name: string; status: number; error: { code: string; message: string; details?: unknown[] } })[] };

describe("POST /api/v1/machine-statuses", () => {
  let server: TestServer;
  let nodeToken: string;

  before(async () => {
    server = await startTestServer();
    for (const [name, node] of [["m1", "n1"], ["m2", "n1"], ["elsewhere", "n2"]] as const) {
      assert.equal((await server.call("POST", "/api/v1/machines", machine(name, node))).status, 201);
    }
    const minted = await server.call("POST", "/api/v1/tokens", { role: "node", node: "n1" });
    nodeToken = ((await minted.json()) as { secret: string }).secret;
  });
  after(() => server.close());

  const post = async (items: unknown[], token?: string) => {
    const response = await server.call("POST", "/api/v1/machine-statuses", { items }, token ? { authorization: `Bearer ${token}` } : {});
    return { status: response.status, body: (await response.json()) as Answer };
  };

  test("each entry is written or refused on its own, answered in its position", async () => {
    const { status, body } = await post([
      { name: "m1", status: { phase: "booting", pid: 11 } },
      { name: "missing", status: { phase: "ready" } },
      { name: "m2", status: { phase: "bogus" } },
      { name: "m2", metadata: { resourceVersion: "1" }, status: { phase: "ready" } },
      "not an entry",
    ]);
    assert.equal(status, 200);
    const [written, missing, invalid, stale, garbage] = body.items;
    assert.ok(written && "object" in written && written.object.status.phase === "booting" && written.object.status.pid === 11);
    assert.ok(missing && "error" in missing && missing.status === 404 && missing.error.code === "NotFound");
    assert.ok(invalid && "error" in invalid && invalid.status === 400 && invalid.error.code === "Invalid", JSON.stringify(invalid));
    assert.ok(stale && "error" in stale && stale.status === 409 && stale.error.code === "Conflict", JSON.stringify(stale));
    assert.ok(garbage && "error" in garbage && garbage.status === 400 && garbage.name === "(entry 4)");
    const m1 = (await (await server.call("GET", "/api/v1/machines/m1")).json()) as Machine;
    const m2 = (await (await server.call("GET", "/api/v1/machines/m2")).json()) as Machine;
    assert.equal(m1.status.phase, "booting");
    assert.equal(m2.status.phase, "pending", "no bad entry changed anything");
  });

  test("a node token writes its own node's machines only, and only loopback addresses without a registered one", async () => {
    const { status, body } = await post(
      [
        { name: "m2", status: { phase: "ready", addresses: [{ guestPort: 80, hostPort: 9000, url: "http://127.0.0.1:9000/" }] } },
        { name: "elsewhere", status: { phase: "failed" } },
        { name: "m1", status: { phase: "ready", addresses: [{ guestPort: 80, hostPort: 80, url: "http://10.9.9.9:80/" }] } },
      ],
      nodeToken,
    );
    assert.equal(status, 200);
    const [own, foreign, badAddress] = body.items;
    assert.ok(own && "object" in own && own.object.status.phase === "ready");
    assert.ok(foreign && "error" in foreign && foreign.status === 403 && /placed on node n2/.test(foreign.error.message), JSON.stringify(foreign));
    assert.ok(badAddress && "error" in badAddress && badAddress.status === 403 && /addresses/.test(badAddress.error.message), JSON.stringify(badAddress));
    const elsewhere = (await (await server.call("GET", "/api/v1/machines/elsewhere")).json()) as Machine;
    assert.equal(elsewhere.status.phase, "pending");
  });

  test("two entries for one machine are both written, in order: the later one is its status", async () => {
    const { body } = await post([
      { name: "m2", status: { phase: "booting", pid: 21 } },
      { name: "m2", status: { phase: "ready", pid: 21 } },
    ]);
    const [first, second] = body.items;
    assert.ok(first && "object" in first && second && "object" in second, JSON.stringify(body));
    assert.ok(BigInt(second.object.metadata.resourceVersion) > BigInt(first.object.metadata.resourceVersion));
    const m2 = (await (await server.call("GET", "/api/v1/machines/m2")).json()) as Machine;
    assert.equal(m2.status.phase, "ready");
  });

  test("read-only and proxy tokens may not use it at all", async () => {
    for (const role of ["read-only", "proxy"]) {
      const minted = await server.call("POST", "/api/v1/tokens", { role, name: `t-${role}` });
      const token = ((await minted.json()) as { secret: string }).secret;
      const response = await server.call("POST", "/api/v1/machine-statuses", { items: [{ name: "m1", status: { phase: "failed" } }] }, { authorization: `Bearer ${token}` });
      assert.equal(response.status, 403, role);
    }
    const m1 = (await (await server.call("GET", "/api/v1/machines/m1")).json()) as Machine;
    assert.notEqual(m1.status.phase, "failed");
  });

  test("too many entries, or not a list, are refused whole", async () => {
    const many = Array.from({ length: MAX_MACHINE_STATUSES + 1 }, () => ({ name: "m1", status: { phase: "ready" } }));
    assert.equal((await server.call("POST", "/api/v1/machine-statuses", { items: many })).status, 400);
    assert.equal((await server.call("POST", "/api/v1/machine-statuses", { items: "m1" })).status, 400);
    assert.equal((await server.call("POST", "/api/v1/machine-statuses", { items: [], extra: 1 })).status, 400);
  });

  test("the client answers each entry with its machine or the error the single route would throw", async () => {
    const client = new PithClient({ server: server.url, token: server.token });
    const [ok, missing] = await client.updateMachineStatuses([
      { name: "m1", status: { phase: "ready", pid: 12 } },
      { name: "missing", status: { phase: "ready" } },
    ]);
    assert.ok(ok && !(ok instanceof Error) && ok.status.pid === 12);
    assert.ok(missing instanceof Error && "status" in missing && missing.status === 404);
    const single = await client.updateStatus("Machine", "missing", { phase: "ready" }).catch((e: Error) => e);
    assert.equal((single as Error).message, missing.message, "the same error as the single route");
  });
});
