import assert from "node:assert/strict";
import { test } from "node:test";
import { Type } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { interpreted, refine, schemaProblems } from "./problems.ts";

const Thing = refine(
  Type.Object({ name: Type.String({ minLength: 1 }), count: Type.Integer({ minimum: 0, maximum: 9 }), low: Type.Optional(Type.Integer()), high: Type.Optional(Type.Integer()) }, { additionalProperties: false }),
  (value) => {
    const { low, high } = value as { low?: number; high?: number };
    return low !== undefined && high !== undefined && low > high ? [{ path: "/low", message: "must be <= high" }] : [];
  },
);
const plain = (value: unknown) => schemaProblems(Thing, value).map(({ path, message, key }) => ({ path, message, key }));

test("a misspelt field gets a guess, a far one the list of fields; both point at the key", () => {
  assert.deepEqual(plain({ name: "a", count: 1, cuont: 2 }), [{ path: "/cuont", message: 'unknown field "cuont": did you mean count?', key: true }]);
  assert.deepEqual(plain({ name: "a", count: 1, zzzzzz: 2 }), [{ path: "/zzzzzz", message: 'unknown field "zzzzzz"; the fields here are name, count, low, high', key: true }]);
});

test("a missing field is reported once, not also for its absent value", () => {
  assert.deepEqual(plain({ count: 1 }), [{ path: "/name", message: "is required", key: false }]);
});

test("rules run only once the shape is right", () => {
  assert.deepEqual(plain({ name: "a", count: 1, low: 3, high: 2 }), [{ path: "/low", message: "must be <= high", key: false }]);
  assert.deepEqual(plain({ name: "", count: 1, low: 3, high: 2 }), [{ path: "/name", message: "must not be empty", key: false }]);
  assert.deepEqual(plain({ name: "a", count: 1, low: 1, high: 2 }), []);
});

test("the compiled checker (the API's) and the interpreted one (the browser's) report the same", () => {
  const compiled = TypeCompiler.Compile(Thing);
  for (const value of [{ name: "a", count: 10, extra: 1 }, { count: "x" }, null, { name: "a", count: 1, low: 5, high: 1 }]) {
    assert.deepEqual(schemaProblems(Thing, value, compiled), schemaProblems(Thing, value, interpreted(Thing)), JSON.stringify(value));
  }
});
