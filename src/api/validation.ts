import { Kind as KindSymbol, type TSchema } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { Value } from "@sinclair/typebox/value";
import type { FastifySchemaCompiler } from "fastify";
import { ApiError, type ErrorDetail } from "./api-error.ts";
import { schemaProblems } from "./schemas/problems.ts";

/**
 * Request validation with TypeBox's compiled checkers (Fastify's default Ajv setup would coerce
 * body types and silently drop unknown fields; this does neither). Bodies are checked as sent;
 * query strings and path parameters are converted from strings first ("true" -> true).
 * A failure becomes a 400 Invalid ApiError with one detail per problem: a JSON pointer and a
 * message meant for a person, worded by schemas/problems.ts (which the web GUI shares).
 */

const PART_NAMES: Record<string, string> = { body: "request body", querystring: "query string", params: "path parameter", headers: "headers" };

export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  if (!(KindSymbol in schema)) throw new Error(`route schemas must be TypeBox schemas (${httpPart})`);
  const checker = TypeCompiler.Compile(schema);
  const fromStrings = httpPart === "querystring" || httpPart === "params";
  return (data: unknown) => {
    const value = fromStrings ? Value.Convert(schema, data) : data;
    const details = schemaProblems(schema, value, checker).map(({ path, message }) => ({ path, message }));
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
