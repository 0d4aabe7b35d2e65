import type { TSchema } from "@sinclair/typebox";
import { Replicas } from "../../api/schemas/kinds.ts";
import { schemaProblems } from "../../api/schemas/problems.ts";

/**
 * The API's rules for the GUI's small forms (create a service, scale it): a form builds the body
 * it will send and asks the API's own schema what is wrong with it, field by field, before
 * sending. The bounds an input shows (min/max) come from the same schema.
 */

/** The first problem with each field of `body`, keyed by JSON pointer (/metadata/name). */
export function fieldProblems(schema: TSchema, body: unknown): Map<string, string> {
  const problems = new Map<string, string>();
  for (const { path, message } of schemaProblems(schema, body)) if (!problems.has(path)) problems.set(path, message);
  return problems;
}

export const REPLICAS = { min: Replicas.minimum ?? 0, max: Replicas.maximum ?? Infinity };
