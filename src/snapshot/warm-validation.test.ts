import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startTestServer, type TestServer } from "../api/test-support.ts";

/** spec.warm as the API judges it: a count of 0-16, only with startMode snapshot, each mistake a 400 naming the field. */
let server: TestServer;
before(async () => (server = await startTestServer()));
after(() => server.close());

const create = (name: string, spec: Record<string, unknown>) =>
  server.call("POST", "/api/v1/services", { apiVersion: "pith.dev/v1", kind: "Service", metadata: { name }, spec: { image: "hello", ...spec } });

async function problems(response: Response): Promise<{ path: string; message: string }[]> {
  assert.equal(response.status, 400, await response.clone().text());
  return ((await response.json()) as { error: { details: { path: string; message: string }[] } }).error.details;
}

test("warm machines with startMode snapshot are accepted, and read back", async () => {
  const response = await create("warm-ok", { startMode: "snapshot", warm: 2 });
  assert.equal(response.status, 201, await response.clone().text());
  const body = (await response.json()) as { spec: { warm?: number } };
  assert.equal(body.spec.warm, 2);
});

test("bad warm values are refused with a clear problem at /spec/warm", async () => {
  for (const warm of [-1, 17, 1.5, "2", null]) {
    const details = await problems(await create("warm-bad", { startMode: "snapshot", warm }));
    assert.ok(details.some((d) => d.path === "/spec/warm"), `${JSON.stringify(warm)}: ${JSON.stringify(details)}`);
  }
});

test("warm without startMode snapshot says what to set", async () => {
  for (const spec of [{ warm: 1 }, { warm: 1, startMode: "boot" }]) {
    const details = await problems(await create("warm-boot", spec));
    const problem = details.find((d) => d.path === "/spec/warm");
    assert.match(problem?.message ?? "", /startMode: snapshot/, JSON.stringify(details));
  }
  assert.equal((await create("warm-zero", { warm: 0 })).status, 201, "warm 0 asks for nothing, in any mode");
});
