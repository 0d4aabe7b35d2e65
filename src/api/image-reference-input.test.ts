import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { API_VERSION } from "../model/resource.ts";
import { service, startTestServer, type TestServer } from "./test-support.ts";

describe("image references at the API", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  for (const image of ["../../token", "a/b", "x\u0000", ".."]) {
    it(`answers 400 to a Service whose image is ${JSON.stringify(image)}`, async () => {
      const response = await server.call("POST", "/api/v1/services", service("bad", { image, replicas: 1 }));
      assert.equal(response.status, 400);
      const body = (await response.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "Invalid");
      assert.match(JSON.stringify(body), /image name .*digest/);
    });
  }

  it("accepts a name, a digest and a digest prefix", async () => {
    for (const [i, image] of ["hello-ts", "sha256:" + "0".repeat(64), "0123abcd"].entries()) {
      const response = await server.call("POST", "/api/v1/services", service(`ok${i}`, { image, replicas: 1 }));
      assert.equal(response.status, 201, await response.text());
    }
  });

  it("answers 400 to inspecting an Image whose digest is not one, before touching the store's files", async () => {
    await server.store.create({
      apiVersion: API_VERSION,
      kind: "Image",
      metadata: { name: "evil" },
      spec: { digest: "../../../etc", runtime: "native", memoryMiB: 64, vcpus: 1, listen: [], egress: [], storedBytes: 1 },
    });
    const response = await server.call("GET", "/api/v1/images/evil/inspect");
    assert.equal(response.status, 400);
  });
});
