import { isScalar } from "yaml";
import { envNameProblem, envProblems, envValueProblem } from "../model/env-rules.ts";
import type { Ctx, YNode } from "./context.ts";
import { expected, isNothing, readMap } from "./read.ts";

/**
 * The `env` field: string-to-string, because the guest's environment holds nothing else. The
 * rules (names, one-line values, sizes) are the ones every way into a machine shares.
 */
export function readEnv(ctx: Ctx, node: YNode, at: string): Record<string, string> | undefined {
  const entries = readMap(ctx, node, at);
  if (!entries) return undefined;
  const env: Record<string, string> = {};
  let ok = true;
  for (const { key, keyNode, value, at: valueAt } of entries.values()) {
    const text = checkName(ctx, keyNode, valueAt, key) ? readValue(ctx, value, valueAt, key) : undefined;
    if (text === undefined) ok = false;
    else env[key] = text;
  }
  if (!ok) return undefined;
  // Each entry passed, so only the count and the total remain to be wrong.
  const whole = envProblems(env);
  for (const problem of whole) ctx.report(node, at, `env has ${problem.message}`, problem.hint);
  return whole.length === 0 ? env : undefined;
}

function checkName(ctx: Ctx, keyNode: YNode, at: string, key: string): boolean {
  const problem = envNameProblem(key);
  if (problem) ctx.report(keyNode, at, problem.message, problem.hint);
  return problem === undefined;
}

function readValue(ctx: Ctx, node: YNode, at: string, key: string): string | undefined {
  if (!isScalar(node) || typeof node.value !== "string") {
    // Stringifying YAML numbers and booleans would hide surprises like `VERSION: 1.10` becoming
    // "1.1", so ask for quotes instead.
    const hint = isNothing(node)
      ? `write ${key}: "" for an empty value`
      : isScalar(node) ? `put the value in quotes: ${key}: "${node.source ?? String(node.value)}"` : undefined;
    return expected(ctx, node, at, "a string", hint);
  }
  const problem = envValueProblem(key, node.value);
  if (problem) {
    ctx.report(node, at, problem.message, problem.hint);
    return undefined;
  }
  return node.value;
}
