import { Kind as KindSymbol, type TSchema } from "@sinclair/typebox";
import { TypeCompiler, ValueErrorType, type ValueError } from "@sinclair/typebox/compiler";
import { Value } from "@sinclair/typebox/value";
import type { FastifySchemaCompiler } from "fastify";
import { ApiError, type ErrorDetail } from "./api-error.ts";

/**
 * Request validation with TypeBox's compiled checkers (Fastify's default Ajv setup would coerce
 * body types and silently drop unknown fields; this does neither). Bodies are checked as sent;
 * query strings and path parameters are converted from strings first ("true" -> true).
 * A failure becomes a 400 Invalid ApiError with one detail per problem: a JSON pointer and a
 * message meant for a person ("must be >= 0", "unknown field \"replcas\"").
 */

/** Extra checks that JSON Schema cannot express (cross-field rules), keyed by body schema. */
export type Refinement = (value: unknown) => ErrorDetail[];
const refinements = new WeakMap<TSchema, Refinement>();

export function refine<T extends TSchema>(schema: T, refinement: Refinement): T {
  refinements.set(schema, refinement);
  return schema;
}

const MAX_DETAILS = 20;
const PART_NAMES: Record<string, string> = { body: "request body", querystring: "query string", params: "path parameter", headers: "headers" };

export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  if (!(KindSymbol in schema)) throw new Error(`route schemas must be TypeBox schemas (${httpPart})`);
  const checker = TypeCompiler.Compile(schema);
  const refinement = refinements.get(schema);
  const fromStrings = httpPart === "querystring" || httpPart === "params";
  return (data: unknown) => {
    const value = fromStrings ? Value.Convert(schema, data) : data;
    const details = checker.Check(value) ? [] : describeErrors([...checker.Errors(value)]);
    if (details.length === 0 && refinement) details.push(...refinement(value));
    if (details.length === 0) return { value };
    return { error: invalid(PART_NAMES[httpPart ?? "body"] ?? "request", details) };
  };
};

export function invalid(where: string, details: ErrorDetail[]): ApiError {
  const first = details[0];
  const summary = first ? `${first.path || "/"}: ${first.message}` : "invalid";
  const more = details.length > 1 ? ` (and ${details.length - 1} more)` : "";
  return new ApiError("Invalid", `invalid ${where}: ${summary}${more}`, "fix the fields listed in details; GET /openapi.json describes every field", details);
}

function describeErrors(errors: ValueError[]): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    const detail = { path: error.path, message: describe(error) };
    const key = `${detail.path}\0${detail.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    details.push(detail);
    if (details.length === MAX_DETAILS) break;
  }
  return details;
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
      return typeof rule === "string" ? `invalid name ${JSON.stringify(key)}: ${rule}` : `unknown field ${JSON.stringify(key)}`;
    }
    case ValueErrorType.ObjectRequiredProperty:
      return "is required";
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
