import type { TSchema } from "@sinclair/typebox";
import { Errors, ValueErrorType, type ValueError } from "@sinclair/typebox/errors";
import { Check } from "@sinclair/typebox/value";
import { closest } from "../../manifest/suggest.ts";
import type { ErrorDetail } from "../api-error.ts";

/**
 * What is wrong with a value, judged by a TypeBox schema and the rules registered for it, in
 * words meant for a person ("must be >= 0", "unknown field \"replcas\": did you mean replicas?").
 * The API's request validation and the web GUI's manifest editor both use this, so a field, a
 * bound or a message is defined once. It is bundled for the browser: nothing here may import a
 * node: module or anything of the server (type-only imports are erased).
 */

/** Extra checks that JSON Schema cannot express (cross-field rules), keyed by schema. */
export type Refinement = (value: unknown) => ErrorDetail[];
const refinements = new WeakMap<TSchema, Refinement>();

export function refine<T extends TSchema>(schema: T, refinement: Refinement): T {
  refinements.set(schema, refinement);
  return schema;
}

export interface SchemaProblem extends ErrorDetail {
  /** True when the problem is an object's key (an unknown field, an invalid name), not its value. */
  key: boolean;
  /** The offending value, for hints a particular caller can add (undefined for refinements). */
  value?: unknown;
  type?: ValueErrorType;
}

/** What a compiled checker and the interpreted one both offer. */
export interface Checker {
  Check(value: unknown): boolean;
  Errors(value: unknown): Iterable<ValueError>;
}

/** The interpreter: no generated code, so it runs under a CSP without 'unsafe-eval'. */
export const interpreted = (schema: TSchema): Checker => ({
  Check: (value) => Check(schema, value),
  Errors: (value) => Errors(schema, value),
});

const MAX_PROBLEMS = 20;

/**
 * The value's problems: its shape first, then, only when the shape is right (the rules may rely
 * on it), the schema's refinement. Empty when the value is acceptable.
 */
export function schemaProblems(schema: TSchema, value: unknown, checker: Checker = interpreted(schema)): SchemaProblem[] {
  if (!checker.Check(value)) return describeErrors(checker.Errors(value));
  return (refinements.get(schema)?.(value) ?? []).map((detail) => ({ ...detail, key: false }));
}

function describeErrors(errors: Iterable<ValueError>): SchemaProblem[] {
  const problems: SchemaProblem[] = [];
  const seen = new Set<string>();
  // TypeBox reports a missing field, then checks its absent value too ("must be a string"):
  // the first says it all. (The required error always comes first.)
  const missing = new Set<string>();
  for (const error of errors) {
    if (error.type === ValueErrorType.ObjectRequiredProperty) missing.add(error.path);
    else if (missing.has(error.path)) continue;
    const problem = {
      path: error.path,
      message: describe(error),
      key: error.type === ValueErrorType.ObjectAdditionalProperties,
      value: error.value,
      type: error.type,
    };
    const id = `${problem.path}\0${problem.message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    problems.push(problem);
    if (problems.length === MAX_PROBLEMS) break;
  }
  return problems;
}

const lastSegment = (path: string): string => (path.split("/").pop() ?? "").replaceAll("~1", "/").replaceAll("~0", "~");

const TYPE_NAMES: Partial<Record<ValueErrorType, string>> = {
  [ValueErrorType.Array]: "an array",
  [ValueErrorType.Boolean]: "true or false",
  [ValueErrorType.Integer]: "an integer",
  [ValueErrorType.Number]: "a number",
  [ValueErrorType.Object]: "an object",
  [ValueErrorType.String]: "a string",
  [ValueErrorType.Null]: "null",
};

/** A message for one error, in the schema's words where it has them. */
function describe(error: ValueError): string {
  const s = error.schema as Record<string, unknown>;
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties: {
      const key = lastSegment(error.path);
      const rule = s["x-key-rule"];
      return typeof rule === "string" ? `invalid name ${JSON.stringify(key)}: ${rule}` : unknownField(key, s.properties);
    }
    case ValueErrorType.ObjectRequiredProperty:
      return "is required";
  }
  if (error.type === ValueErrorType.Union) {
    // A value of the type only one form takes gets that form's words (a string env value: the string rule).
    const kind = error.value === null ? "null" : Array.isArray(error.value) ? "array" : typeof error.value;
    const forms = (Array.isArray(s.anyOf) ? (s.anyOf as Record<string, unknown>[]) : []).filter((o) => o.type === kind);
    if (forms.length === 1 && typeof forms[0]!.errorMessage === "string") return forms[0]!.errorMessage;
  }
  if (typeof s.errorMessage === "string") return s.errorMessage;
  const typeName = TYPE_NAMES[error.type];
  if (typeName) return `must be ${typeName}`;
  switch (error.type) {
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return `must be >= ${String(s.minimum)}`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return `must be <= ${String(s.maximum)}`;
    case ValueErrorType.IntegerExclusiveMinimum:
    case ValueErrorType.NumberExclusiveMinimum:
      return `must be > ${String(s.exclusiveMinimum)}`;
    case ValueErrorType.IntegerExclusiveMaximum:
    case ValueErrorType.NumberExclusiveMaximum:
      return `must be < ${String(s.exclusiveMaximum)}`;
    case ValueErrorType.StringMinLength:
      return s.minLength === 1 ? "must not be empty" : `must be at least ${String(s.minLength)} characters`;
    case ValueErrorType.StringMaxLength:
      return `must be at most ${String(s.maxLength)} characters`;
    case ValueErrorType.StringPattern:
      return `must match ${String(s.pattern)}`;
    case ValueErrorType.ObjectMaxProperties:
      return `must have at most ${String(s.maxProperties)} entries`;
    case ValueErrorType.ArrayMinItems:
      return `must have at least ${String(s.minItems)} items`;
    case ValueErrorType.ArrayMaxItems:
      return `must have at most ${String(s.maxItems)} items`;
    case ValueErrorType.Literal:
      return `must be ${JSON.stringify(s.const)}`;
    case ValueErrorType.Union: {
      const options = Array.isArray(s.anyOf) ? (s.anyOf as Record<string, unknown>[]) : [];
      if (options.length > 0 && options.every((o) => "const" in o)) {
        return `must be one of ${options.map((o) => JSON.stringify(o.const)).join(", ")}`;
      }
      return "does not match any allowed form";
    }
    default:
      return error.message;
  }
}

/** A misspelt field gets the closest known one; a field far from all of them, the list. */
function unknownField(key: string, properties: unknown): string {
  const known = typeof properties === "object" && properties !== null ? Object.keys(properties) : [];
  const guess = closest(key, known);
  if (guess) return `unknown field ${JSON.stringify(key)}: did you mean ${guess}?`;
  return known.length ? `unknown field ${JSON.stringify(key)}; the fields here are ${known.join(", ")}` : `unknown field ${JSON.stringify(key)}`;
}
