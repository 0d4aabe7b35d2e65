import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { API_VERSION } from "../model/resource.ts";
import { service, startTestServer, type TestServer } from "./test-support.ts";

const D = "sha256:" + "ab".repeat(32);

describe("registry references at the API", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  it("accepts a Service naming an image by registry tag or digest", async () => {
    for (const [i, image] of ["127.0.0.1:5000/hello-ts:v1", `registry.example/team/app@${D}`, "localhost:5000/a"].entries()) {
      const response = await server.call("POST", "/api/v1/services", service(`reg${i}`, { image, replicas: 1 }));
      assert.equal(response.status, 201, await response.text());
    }
  });

  for (const image of ["r.io/../x", "r.io/a@sha256:abc", "app/x", "r.io:70000/a", "http://r.io/a", `r.io/${"a".repeat(260)}`]) {
    it(`answers 400 to a Service whose image is ${JSON.stringify(image.slice(0, 30))}`, async () => {
      const response = await server.call("POST", "/api/v1/services", service("bad", { image, replicas: 1 }));
      assert.equal(response.status, 400);
      assert.match(await response.text(), /registry reference/);
    });
  }

  it("a Machine's imageSource must be pinned to a digest", async () => {
    const machine = (name: string, imageSource: string) => ({
      apiVersion: API_VERSION,
      kind: "Machine",
      metadata: { name },
      spec: { image: D, imageSource, memoryMiB: 64, vcpus: 1, desiredState: "running" },
    });
    assert.equal((await server.call("POST", "/api/v1/machines", machine("m1", `127.0.0.1:5000/a@${D}`))).status, 201);
    const tagged = await server.call("POST", "/api/v1/machines", machine("m2", "127.0.0.1:5000/a:v1"));
    assert.equal(tagged.status, 400);
    assert.match(await tagged.text(), /REPO@sha256/);
  });
});
