import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Role } from "../model/token.ts";
import { startTestServer, StreamReader, type TestServer } from "./test-support.ts";

/** A value that appears nowhere unless something leaks it. */
const VALUE = "pw-7f3a9c1e-only-in-the-secret";
const SECOND = "pw-second-value-b81d2e";

const secret = (name: string, stringData: Record<string, string>) => ({ apiVersion: "pith.dev/v1", kind: "Secret", metadata: { name }, spec: { stringData } });

describe("Secrets through the API", () => {
  let server: TestServer;
  const tokens: Partial<Record<string, string>> = {};
  const as = (role: string, method: string, path: string, body?: unknown) => server.call(method, path, body, { authorization: `Bearer ${tokens[role]}` });

  async function mint(role: Role, node?: string): Promise<string> {
    const response = await server.call("POST", "/api/v1/tokens", { role, ...(node ? { node } : {}), name: `${role}${node ?? ""}` });
    assert.equal(response.status, 201);
    return ((await response.json()) as { secret: string }).secret;
  }

  before(async () => {
    server = await startTestServer({ server: { heartbeatMs: 100 } });
    tokens.reader = await mint("read-only");
    tokens.proxy = await mint("proxy");
    tokens.n1 = await mint("node", "n1");
    tokens.n2 = await mint("node", "n2");
  });
  after(() => server?.close());

  test("values are write-only: create, get, list, watch and delete answer with keys and hashes, to every role", async () => {
    const watch = await server.call("GET", "/api/v1/secrets?watch=true");
    const all = await server.call("GET", "/api/v1/watch");
    const readerWatch = await as("reader", "GET", "/api/v1/secrets?watch=true", undefined);
    const streams = [new StreamReader(watch), new StreamReader(all), new StreamReader(readerWatch)];

    const created = await server.call("POST", "/api/v1/secrets", secret("db", { password: VALUE, user: "app" }));
    const createdText = await created.text();
    assert.equal(created.status, 201, createdText);
    const body = JSON.parse(createdText) as { spec: Record<string, unknown> };
    assert.deepEqual(Object.keys(body.spec), ["keys"]);
    assert.deepEqual(Object.keys(body.spec.keys as object), ["password", "user"]);
    assert.match((body.spec.keys as Record<string, { hash: string }>).password!.hash, /^hmac-sha256:[0-9a-f]{32}$/);

    const answers: string[] = [createdText];
    for (const role of ["admin", "reader", "n1", "proxy"]) {
      for (const path of ["/api/v1/secrets/db", "/api/v1/secrets"]) {
        const response = role === "admin" ? await server.call("GET", path) : await as(role, "GET", path);
        const text = await response.text();
        if (role === "proxy") assert.equal(response.status, 403, "a proxy token reads no Secret");
        else assert.equal(response.status, 200, text);
        answers.push(text);
      }
    }
    for (const stream of streams) {
      let line = "";
      while (!line.includes('"Secret"')) line = await stream.until("\n");
      answers.push(line);
      await stream.cancel();
    }
    const deleted = await server.call("DELETE", "/api/v1/secrets/db");
    answers.push(await deleted.text());
    for (const text of answers) {
      assert.ok(!text.includes(VALUE), `no answer carries the value: ${text}`);
      assert.ok(!text.includes("sealed") && !text.includes("stringData"), `nor the sealed form: ${text}`);
    }
  });

  test("the store's file holds the value only sealed", async () => {
    assert.equal((await server.call("POST", "/api/v1/secrets", secret("at-rest", { password: VALUE }))).status, 201);
    assert.equal((await server.call("PUT", "/api/v1/secrets/at-rest", secret("at-rest", { password: SECOND }))).status, 200);
    const files = (await readdir(server.dir)).filter((f) => f.startsWith("store.db"));
    assert.ok(files.includes("store.db"));
    for (const file of files) {
      const bytes = await readFile(join(server.dir, file));
      for (const value of [VALUE, SECOND]) {
        assert.equal(bytes.indexOf(value), -1, `${file} does not hold ${value} in plain bytes`);
        assert.equal(bytes.indexOf(Buffer.from(value, "utf16le")), -1);
      }
    }
    assert.ok((await readFile(join(server.dir, "store.db-wal")).catch(() => readFile(join(server.dir, "store.db")))).includes("v1."), "the sealed form is there");
  });

  test("rewriting the same values changes nothing; a new value changes its hash and the generation", async () => {
    const first = (await (await server.call("POST", "/api/v1/secrets", secret("same", { k: VALUE }))).json()) as { metadata: { generation: number; resourceVersion: string }; spec: { keys: Record<string, { hash: string }> } };
    const again = await server.call("POST", "/api/v1/secrets", secret("same", { k: VALUE }));
    assert.equal(again.status, 200, "an identical create is a no-op");
    const put = (await (await server.call("PUT", "/api/v1/secrets/same", secret("same", { k: VALUE }))).json()) as typeof first;
    assert.equal(put.metadata.generation, first.metadata.generation);
    assert.equal(put.spec.keys.k!.hash, first.spec.keys.k!.hash);
    const changed = (await (await server.call("PUT", "/api/v1/secrets/same", secret("same", { k: SECOND }))).json()) as typeof first;
    assert.equal(changed.metadata.generation, first.metadata.generation + 1);
    assert.notEqual(changed.spec.keys.k!.hash, first.spec.keys.k!.hash);
    const different = await server.call("POST", "/api/v1/secrets", secret("same", { k: VALUE }));
    assert.equal(different.status, 409);
  });

  test("bad Secrets are refused with the field: server-set fields, bad keys, multi-line values; writers need admin", async () => {
    const bad = await server.call("POST", "/api/v1/secrets", { ...secret("bad", { "a/b": "x", ok: "line\nbreak" }) });
    assert.equal(bad.status, 400);
    const details = ((await bad.json()) as { error: { details: { path: string }[] } }).error.details.map((d) => d.path);
    assert.ok(details.includes("/spec/stringData/a~1b"), JSON.stringify(details));
    assert.ok(details.includes("/spec/stringData/ok"), JSON.stringify(details));
    const forged = await server.call("POST", "/api/v1/secrets", { apiVersion: "pith.dev/v1", kind: "Secret", metadata: { name: "forged" }, spec: { keys: { a: { hash: "x" } }, sealed: { a: "v1.AAAA" } } });
    assert.equal(forged.status, 400);
    assert.match(await forged.text(), /set by the server: send the values as spec.stringData/);
    for (const role of ["reader", "n1", "proxy"]) assert.equal((await as(role, "POST", "/api/v1/secrets", secret("x", { a: "b" }))).status, 403, role);
  });

  test("keys that name Object.prototype's members are plain keys: stored, hashed, and never found by inheritance", async () => {
    const created = await server.call("POST", "/api/v1/secrets", secret("proto", { constructor: "c-value", hasOwnProperty: "h" }));
    assert.equal(created.status, 201, await created.clone().text());
    const body = (await created.json()) as { spec: { keys: Record<string, { hash: string }> } };
    assert.deepEqual(Object.keys(body.spec.keys), ["constructor", "hasOwnProperty"]);
    const m = { apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name: "m-proto" }, spec: { image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running", node: "n1", secretEnv: { A: { name: "proto", key: "constructor" }, B: { name: "proto", key: "toString" } } } };
    assert.equal((await server.call("POST", "/api/v1/machines", m)).status, 201);
    const opened = await as("n1", "GET", "/api/v1/machines/m-proto/secret-env");
    assert.equal(opened.status, 409, "toString is not a key of the Secret, whatever its prototype has");
    assert.match(await opened.text(), /key toString of Secret proto/);
  });

  test("a Service's secretRef is shown as a reference; values in its revisions are hidden like its env", async () => {
    const spec = { image: "hello", replicas: 1, env: { DB_PASSWORD: { secretRef: { name: "db", key: "password" } }, PLAIN: "visible-to-admins" } };
    const created = await server.call("POST", "/api/v1/services", { apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "web" }, spec });
    assert.equal(created.status, 201, await created.clone().text());
    const seen = (await (await as("reader", "GET", "/api/v1/services/web")).json()) as { spec: { env: Record<string, unknown> } };
    assert.deepEqual(seen.spec.env, { DB_PASSWORD: { secretRef: { name: "db", key: "password" } }, PLAIN: "(hidden)" });
    const badRef = await server.call("POST", "/api/v1/services", { apiVersion: "pith.dev/v1", kind: "Service", metadata: { name: "bad" }, spec: { image: "hello", env: { X: { secretRef: { name: "Not_A_Name", key: "k" } } } } });
    assert.equal(badRef.status, 400);
  });

  test("the agent's path: a node token opens the values of its own machines only, and each read is an event without the value", async () => {
    assert.equal((await server.call("POST", "/api/v1/secrets", secret("api", { token: VALUE }))).status, 201);
    const machine = (name: string, node: string | undefined, secretEnv: Record<string, { name: string; key: string }>) => ({
      apiVersion: "pith.dev/v1",
      kind: "Machine",
      metadata: { name },
      spec: { image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running", env: { A: "1" }, secretEnv, ...(node ? { node } : {}) },
    });
    for (const [name, node] of [["m-1", "n1"], ["m-2", "n2"], ["m-3", undefined]] as const) {
      assert.equal((await server.call("POST", "/api/v1/machines", machine(name, node, { API_TOKEN: { name: "api", key: "token" } }))).status, 201);
    }
    assert.equal((await server.call("POST", "/api/v1/machines", machine("m-4", "n1", { API_TOKEN: { name: "api", key: "missing" } }))).status, 201);

    const own = await as("n1", "GET", "/api/v1/machines/m-1/secret-env");
    const opened = (await own.json()) as { env: Record<string, string>; hashes: Record<string, string> };
    assert.equal(own.status, 200);
    assert.deepEqual(opened.env, { API_TOKEN: VALUE });
    assert.match(opened.hashes.API_TOKEN!, /^hmac-sha256:/);

    assert.equal((await as("n1", "GET", "/api/v1/machines/m-2/secret-env")).status, 403, "another node's machine");
    assert.equal((await as("n1", "GET", "/api/v1/machines/m-3/secret-env")).status, 403, "a machine placed nowhere");
    assert.equal((await as("reader", "GET", "/api/v1/machines/m-1/secret-env")).status, 403);
    assert.equal((await as("proxy", "GET", "/api/v1/machines/m-1/secret-env")).status, 403);
    const missing = await as("n1", "GET", "/api/v1/machines/m-4/secret-env");
    assert.equal(missing.status, 409);
    assert.match(await missing.text(), /key missing of Secret api, which has no such key/);

    const events = (await (await server.call("GET", "/api/v1/events?involved=Machine/m-1")).json()) as { items: { spec: { reason: string; message: string } }[] };
    const reads = events.items.filter((e) => e.spec.reason === "SecretsRead");
    assert.equal(reads.length, 1);
    assert.match(reads[0]!.spec.message, /node n1 .* read API_TOKEN \(api\/token\)/);
    assert.ok(!JSON.stringify(events).includes(VALUE));
    // The machine object itself holds only the reference, whoever reads it.
    assert.ok(!(await (await as("n1", "GET", "/api/v1/machines/m-1")).text()).includes(VALUE));
  });
});
