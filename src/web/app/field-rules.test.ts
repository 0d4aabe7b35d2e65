import assert from "node:assert/strict";
import { test } from "node:test";
import { KIND_SCHEMAS } from "../../api/schemas/kinds.ts";
import { ScaleBody } from "../../api/schemas/requests.ts";
import { fieldProblems, REPLICAS } from "./field-rules.ts";

const service = (name: string, replicas: number) => ({ apiVersion: "pith.dev/v1", kind: "Service", metadata: { name }, spec: { image: "static-c", replicas } });

test("the forms' fields are judged by the API's schemas, one problem per field", () => {
  assert.deepEqual([...fieldProblems(KIND_SCHEMAS.Service.input, service("web", 3))], []);
  const bad = fieldProblems(KIND_SCHEMAS.Service.input, service("Web_1", REPLICAS.max + 1));
  assert.match(bad.get("/metadata/name") ?? "", /lower-case letters/);
  assert.equal(bad.get("/spec/replicas"), `must be <= ${REPLICAS.max}`);
  assert.equal(fieldProblems(ScaleBody, { replicas: 1.5 }).get("/replicas"), "must be an integer");
  assert.equal(fieldProblems(ScaleBody, { replicas: Number.NaN }).get("/replicas"), "must be an integer");
  assert.equal(fieldProblems(ScaleBody, { replicas: REPLICAS.min - 1 }).get("/replicas"), `must be >= ${REPLICAS.min}`);
  assert.deepEqual([...fieldProblems(ScaleBody, { replicas: REPLICAS.max })], []);
});
