import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { KINDS, PLURALS } from "../model/resource.ts";
import { registeredRoutes } from "./api-server.ts";
import { service, startTestServer, type TestServer } from "./test-support.ts";

// `any`: the assertions below walk response JSON of many shapes.
type Json = Record<string, any>;

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.close());

const json = async (response: Response): Promise<Json> => (await response.json()) as Json;

describe("authentication", () => {
  test("/healthz needs no token", async () => {
    const response = await fetch(`${server.url}/healthz`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { ok: true });
  });

  test("no token, a wrong token or a query token on a plain request: 401 with a hint", async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: `Bearer ${"b".repeat(64)}` }, { authorization: "Basic abc" }];
    for (const headers of attempts) {
      const response = await fetch(`${server.url}/api/v1/services`, { headers });
      assert.equal(response.status, 401);
      const body = await json(response);
      assert.equal(body.error.code, "Unauthorized");
      assert.ok(body.error.hint);
      assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="pith"');
    }
    for (const path of ["/api/v1/services?token=" + server.token, "/api/v1/services?watch=true&token=" + server.token, "/metrics", "/openapi.json"]) {
      assert.equal((await fetch(server.url + path)).status, 401, path);
    }
  });

  test("?token= is accepted for a Server-Sent Events watch only", async () => {
    const controller = new AbortController();
    const response = await fetch(`${server.url}/api/v1/services?watch=true&token=${server.token}`, {
      headers: { accept: "text/event-stream" },
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
    controller.abort();
  });
});

describe("objects", () => {
  test("create, read, list, replace, replace status, delete", async () => {
    const created = await server.call("POST", "/api/v1/services", service("crud", { image: "hello", replicas: 1 }, { app: "crud" }));
    assert.equal(created.status, 201);
    const object = await json(created);
    assert.equal(object.kind, "Service");
    assert.equal(object.metadata.generation, 1);
    assert.deepEqual(object.status, {});

    const read = await json(await server.call("GET", "/api/v1/services/crud"));
    assert.deepEqual(read, object);

    const list = await json(await server.call("GET", "/api/v1/services?labelSelector=app=crud"));
    assert.equal(list.kind, "ServiceList");
    assert.equal(list.apiVersion, "pith.dev/v1");
    assert.deepEqual(list.items.map((item: Json) => item.metadata.name), ["crud"]);
    assert.ok(Number(list.metadata.resourceVersion) >= Number(object.metadata.resourceVersion));
    const none = await json(await server.call("GET", "/api/v1/services?labelSelector=app=other"));
    assert.deepEqual(none.items, []);

    const status = await server.call("PUT", "/api/v1/services/crud/status", { status: { desired: 1, ready: 0 } });
    assert.equal(status.status, 200);
    const withStatus = await json(status);
    assert.deepEqual(withStatus.status, { desired: 1, ready: 0 });
    assert.deepEqual(withStatus.spec, object.spec);
    assert.deepEqual(withStatus.metadata.labels, { app: "crud" });
    assert.equal(withStatus.metadata.generation, 1);

    const replaced = await server.call("PUT", "/api/v1/services/crud", service("crud", { image: "hello", replicas: 2 }, { app: "crud" }));
    assert.equal(replaced.status, 200);
    const afterPut = await json(replaced);
    assert.equal(afterPut.spec.replicas, 2);
    assert.equal(afterPut.metadata.generation, 2);
    assert.deepEqual(afterPut.status, { desired: 1, ready: 0 }, "an omitted status keeps the stored one");

    const deleted = await server.call("DELETE", "/api/v1/services/crud");
    assert.equal(deleted.status, 200);
    assert.equal((await json(deleted)).metadata.name, "crud");
    const gone = await server.call("GET", "/api/v1/services/crud");
    assert.equal(gone.status, 404);
    assert.equal((await json(gone)).error.code, "NotFound");
    assert.equal((await server.call("DELETE", "/api/v1/services/crud")).status, 404);
    assert.equal((await server.call("PUT", "/api/v1/services/crud", service("crud"))).status, 404);
  });

  test("every kind has its routes", async () => {
    const bodies: Record<string, Json> = {
      Machine: { image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running" },
      Node: { capacity: { memoryMiB: 4096, vcpus: 4 }, accelerator: "kvm" },
      Image: { digest: "sha256:abc", runtime: "node", memoryMiB: 64, vcpus: 1, listen: [8080], egress: [], storedBytes: 1 },
      Event: { involved: { kind: "Service", name: "web" }, type: "Normal", reason: "Scaled", message: "to 2", at: new Date().toISOString() },
      Service: { image: "hello" },
      Secret: { stringData: { password: "x" } },
      Volume: { sizeMiB: 64 },
    };
    for (const kind of KINDS) {
      const response = await server.call("POST", `/api/v1/${PLURALS[kind]}`, { apiVersion: "pith.dev/v1", kind, metadata: { name: "every" }, spec: bodies[kind] });
      assert.equal(response.status, 201, `${kind}: ${await response.clone().text()}`);
      assert.equal((await server.call("DELETE", `/api/v1/${PLURALS[kind]}/every`)).status, 200);
    }
  });

  test("unknown fields and bad values: 400 with each problem's path and message", async () => {
    const response = await server.call("POST", "/api/v1/services", service("bad", { image: "hello", replcas: 2, replicas: -1, env: { PITH_X: "1", "9x": "2" } }));
    assert.equal(response.status, 400);
    const { error } = await json(response);
    assert.equal(error.code, "Invalid");
    assert.ok(error.details.some((d: Json) => d.path === "/spec/replcas" && d.message === 'unknown field "replcas": did you mean replicas?'), JSON.stringify(error.details));
    assert.ok(error.details.some((d: Json) => d.path === "/spec/replicas" && d.message === "must be >= 0"));
    assert.ok(error.details.some((d: Json) => d.path === "/spec/env/9x"));
    assert.match(error.message, /\/spec\/replcas/);

    const machine = await server.call("POST", "/api/v1/machines", { apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name: "m", uid: "x" }, spec: { image: "d", memoryMiB: 8, vcpus: 9, desiredState: "up" } });
    const details = (await json(machine)).error.details as Json[];
    assert.deepEqual(
      details.map((d) => d.path).sort(),
      ["/metadata/uid", "/spec/desiredState", "/spec/memoryMiB", "/spec/vcpus"],
    );
    assert.equal(details.find((d) => d.path === "/spec/desiredState")?.message, 'must be one of "running", "stopped"');
    assert.equal(details.find((d) => d.path === "/spec/vcpus")?.message, "must be <= 8");
  });

  test("cross-field rules, the path's kind and name, the body's apiVersion", async () => {
    const both = await json(await server.call("POST", "/api/v1/services", service("x", { image: "i", replicas: 1, min: 0, max: 2 })));
    assert.equal(both.error.details[0].path, "/spec/replicas");
    const inverted = await json(await server.call("POST", "/api/v1/services", service("x", { image: "i", min: 3, max: 2 })));
    assert.deepEqual(inverted.error.details, [{ path: "/spec/min", message: "must be <= max (2)" }]);
    const reserved = await json(await server.call("POST", "/api/v1/services", service("x", { image: "i", env: { PITH_ID: "1" } })));
    assert.equal(reserved.error.details[0].path, "/spec/env/PITH_ID");
    const wrongKind = await json(await server.call("POST", "/api/v1/machines", service("x")));
    assert.deepEqual(wrongKind.error.details.find((d: Json) => d.path === "/kind"), { path: "/kind", message: 'must be "Machine"' });
    const wrongVersion = await json(await server.call("POST", "/api/v1/services", { ...service("x"), apiVersion: "v2" }));
    assert.equal(wrongVersion.error.details[0].path, "/apiVersion");
    const wrongName = await server.call("PUT", "/api/v1/services/x", service("y"));
    assert.equal(wrongName.status, 400);
    assert.equal((await json(wrongName)).error.details[0].path, "/metadata/name");
    const badJson = await server.call("POST", "/api/v1/services", undefined, { "content-type": "application/json" });
    assert.equal(badJson.status, 400);
    assert.equal((await json(badJson)).error.code, "Invalid");
    const badQuery = await server.call("GET", "/api/v1/services?labelSelector=nope");
    assert.equal(badQuery.status, 400);
    assert.equal((await server.call("GET", "/api/v1/services?resourceVersion=1")).status, 400, "resourceVersion is for watches");
    const unknownQuery = await json(await server.call("GET", "/api/v1/services?wacth=true"));
    assert.equal(unknownQuery.error.details[0].message, 'unknown field "wacth": did you mean watch?');
  });

  test("a stale resourceVersion: 409 Conflict with a hint", async () => {
    const created = await json(await server.call("POST", "/api/v1/services", service("stale")));
    const rv = created.metadata.resourceVersion as string;
    const fresh = await server.call("PUT", "/api/v1/services/stale", { ...service("stale", { image: "v2" }), metadata: { name: "stale", resourceVersion: rv } });
    assert.equal(fresh.status, 200);
    for (const [method, path, body] of [
      ["PUT", "/api/v1/services/stale", { ...service("stale", { image: "v3" }), metadata: { name: "stale", resourceVersion: rv } }],
      ["PUT", "/api/v1/services/stale/status", { metadata: { resourceVersion: rv }, status: { ready: 1 } }],
    ] as const) {
      const response = await server.call(method, path, body);
      assert.equal(response.status, 409);
      const { error } = await json(response);
      assert.equal(error.code, "Conflict");
      assert.match(error.hint, /again/);
    }
    assert.equal((await server.call("DELETE", `/api/v1/services/stale?resourceVersion=${rv}`)).status, 409);
    assert.equal((await server.call("GET", "/api/v1/services/stale").then(json)).spec.image, "v2");
  });

  test("create is idempotent: the same object again is 200, a different one 409 AlreadyExists", async () => {
    const body = service("idem", { image: "hello", replicas: 1, env: { A: "1", B: "2" } }, { team: "x" });
    const first = await server.call("POST", "/api/v1/services", body);
    assert.equal(first.status, 201);
    const created = await json(first);
    // Same spec with keys in another order: still the same.
    const again = await server.call("POST", "/api/v1/services", service("idem", { env: { B: "2", A: "1" }, replicas: 1, image: "hello" }, { team: "x" }));
    assert.equal(again.status, 200);
    assert.deepEqual(await json(again), created);
    for (const different of [service("idem", { image: "other", replicas: 1, env: { A: "1", B: "2" } }, { team: "x" }), { ...body, metadata: { name: "idem" } }]) {
      const response = await server.call("POST", "/api/v1/services", different);
      assert.equal(response.status, 409);
      const { error } = await json(response);
      assert.equal(error.code, "AlreadyExists");
      assert.match(error.hint, /PUT/);
    }
  });

  test("scale sets spec.replicas and keeps the rest", async () => {
    await server.call("POST", "/api/v1/services", service("scaled", { image: "hello", replicas: 1, hosts: ["a.example"] }));
    const scaled = await server.call("POST", "/api/v1/services/scaled/scale", { replicas: 4 });
    assert.equal(scaled.status, 200);
    assert.deepEqual((await json(scaled)).spec, { image: "hello", replicas: 4, hosts: ["a.example"] });
    assert.equal((await server.call("POST", "/api/v1/services/scaled/scale", { replicas: -1 })).status, 400);
    assert.equal((await server.call("POST", "/api/v1/services/scaled/scale", { replicas: 1, extra: 1 })).status, 400);
    assert.equal((await server.call("POST", "/api/v1/services/nothere/scale", { replicas: 1 })).status, 404);
    await server.call("POST", "/api/v1/services", service("auto", { image: "hello", min: 0, max: 3 }));
    const auto = await server.call("POST", "/api/v1/services/auto/scale", { replicas: 2 });
    assert.equal(auto.status, 409);
    assert.match((await json(auto)).error.hint, /min\/max/);
  });

  test("events filtered by ?involved=Kind/name, oldest first", async () => {
    const event = (name: string, involved: string, at: string) => ({
      apiVersion: "pith.dev/v1",
      kind: "Event",
      metadata: { name },
      spec: { involved: { kind: "Service", name: involved }, type: "Normal", reason: "Test", message: name, at },
    });
    await server.call("POST", "/api/v1/events", event("e-b", "web", "2030-01-01T00:00:02.000Z"));
    await server.call("POST", "/api/v1/events", event("e-a", "web", "2030-01-01T00:00:01.000Z"));
    await server.call("POST", "/api/v1/events", event("e-c", "db", "2030-01-01T00:00:00.000Z"));
    const list = await json(await server.call("GET", "/api/v1/events?involved=Service/web"));
    assert.deepEqual(list.items.map((e: Json) => e.metadata.name), ["e-a", "e-b"]);
    assert.equal((await server.call("GET", "/api/v1/events?involved=web")).status, 400);
    assert.equal((await server.call("GET", "/api/v1/services?involved=Service/web")).status, 400, "only events have ?involved");
  });
});

describe("system routes", () => {
  test("the OpenAPI document is OpenAPI 3 and lists every route with its methods", async () => {
    const response = await server.call("GET", "/openapi.json");
    assert.equal(response.status, 200);
    const doc = await json(response);
    assert.match(doc.openapi, /^3\.\d+\.\d+$/);
    assert.equal(typeof doc.info.title, "string");
    assert.ok(doc.components.schemas.Service && doc.components.securitySchemes.bearerAuth);

    const expected = new Map<string, Set<string>>();
    for (const { method, url } of registeredRoutes(server.app)) {
      const path = url.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
      expected.set(path, (expected.get(path) ?? new Set()).add(method.toLowerCase()));
    }
    assert.ok(expected.size >= 20, "routes were recorded");
    assert.deepEqual(new Set(Object.keys(doc.paths)), new Set(expected.keys()));
    for (const [path, methods] of expected) {
      assert.deepEqual(new Set(Object.keys(doc.paths[path])), methods, path);
      for (const method of methods) {
        const operation = doc.paths[path][method];
        assert.ok(operation.responses && Object.keys(operation.responses).length > 0, `${method} ${path} documents its responses`);
        for (const name of (path.match(/\{(\w+)\}/g) ?? []).map((p) => p.slice(1, -1))) {
          assert.ok(operation.parameters.some((p: Json) => p.in === "path" && p.name === name), `${method} ${path} documents {${name}}`);
        }
      }
    }
    assert.deepEqual(doc.paths["/healthz"].get.security, [], "healthz is documented as open");
    assert.ok(doc.paths["/api/v1/services"].post.requestBody.content["application/json"].schema.properties.spec);
  });

  test("/metrics counts requests by route pattern", async () => {
    await server.call("GET", "/api/v1/services/does-not-exist");
    const response = await server.call("GET", "/metrics");
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
    const text = await response.text();
    assert.match(text, /pith_api_requests_total\{method="GET",route="\/api\/v1\/services\/:name",status="404"\} \d+/);
    assert.match(text, /pith_api_request_duration_seconds_count\{method="GET",route="\/api\/v1\/services\/:name"\} \d+/);
    assert.doesNotMatch(text, /does-not-exist/);
  });

  test("an unknown route is a JSON 404", async () => {
    const response = await server.call("GET", "/api/v1/widgets");
    assert.equal(response.status, 404);
    assert.equal((await json(response)).error.code, "NotFound");
  });
});
