import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { KINDS, type ResourceInput } from "../../model/resource.ts";
import { createdObject, updatedObject } from "../../store/object-rules.ts";
import { StoreError } from "../../store/store.ts";
import { validateInput } from "../../store/validate.ts";
import { ApiError } from "../api-error.ts";
import { documentText, mutatedDocument, VALID_INPUTS } from "../fuzz-documents.ts";
import { validatorCompiler } from "../validation.ts";
import { KIND_SCHEMAS } from "./kinds.ts";

/**
 * The resource validators, without a server: whatever the body, a validator answers (a value, or a
 * 400 whose every detail has a path and a message) and never throws; what it accepts, the store's
 * own checks and object rules accept or refuse with a StoreError, never with anything else.
 */
const RUNS = { numRuns: 3000, interruptAfterTimeLimit: 8_000 };

const validators = Object.fromEntries(
  KINDS.map((kind) => [kind, validatorCompiler({ schema: KIND_SCHEMAS[kind].input, httpPart: "body", method: "POST", url: "/" }) as (data: unknown) => { value?: unknown; error?: unknown }]),
);

function check(kind: (typeof KINDS)[number], body: unknown): void {
  const result = validators[kind]!(body);
  if (result.error !== undefined) {
    assert.ok(result.error instanceof ApiError, `not an ApiError: ${String(result.error)}`);
    assert.equal(result.error.statusCode, 400);
    assert.ok(result.error.message.length > 0);
    assert.ok((result.error.details ?? []).length > 0, "a 400 without details");
    for (const d of result.error.details ?? []) {
      assert.equal(typeof d.path, "string");
      assert.ok(d.path === "" || d.path.startsWith("/"), `path ${JSON.stringify(d.path)}`);
      assert.ok(d.message.length > 0);
    }
    return;
  }
  const input = result.value as ResourceInput;
  try {
    validateInput(input);
  } catch (e) {
    assert.ok(e instanceof StoreError, `the store's checks threw ${String(e)} for an accepted ${kind}`);
    return;
  }
  const created = createdObject(input, 1, new Date());
  const updated = updatedObject(created, input, 2, new Date());
  assert.equal(JSON.parse(JSON.stringify(updated)).metadata.name, input.metadata.name);
  // Nothing reached Object.prototype.
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
}

test("the valid seeds are valid", () => {
  for (const kind of KINDS) assert.equal(validators[kind]!(structuredClone(VALID_INPUTS[kind])).error, undefined, kind);
});

test("mutated documents of every kind: a value or a 400 with paths, never a throw", () => {
  fc.assert(fc.property(mutatedDocument, ({ kind, doc }) => check(kind, doc)), RUNS);
});

test("documents parsed from JSON with __proto__ and constructor members", () => {
  fc.assert(
    fc.property(documentText, ({ kind, text }) => {
      check(kind, JSON.parse(text));
    }),
    RUNS,
  );
});

test("any value at all as a body", () => {
  fc.assert(fc.property(fc.constantFrom(...KINDS), fc.anything({ withNullPrototype: true, withBigInt: false, maxDepth: 4 }), (kind, body) => check(kind, body)), RUNS);
});
