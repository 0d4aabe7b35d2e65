import { isScalar } from "yaml";
import type { Ctx, YNode } from "./context.ts";
import { expected, isNothing, readMap } from "./read.ts";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Pith passes its own settings to the guest as PITH_* variables; an app must not shadow them. */
const RESERVED_PREFIX = "PITH_";

/** The `env` field: string-to-string, because the guest's environment holds nothing else. */
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
  return ok ? env : undefined;
}

function checkName(ctx: Ctx, keyNode: YNode, at: string, key: string): boolean {
  if (!NAME.test(key)) {
    const fixed = key.replace(/[^A-Za-z0-9_]/g, "_").replace(/^(?=\d)/, "_");
    ctx.report(keyNode, at, `"${key}" is not a valid environment variable name`,
      `use letters, digits and underscores, not starting with a digit, e.g. ${fixed}`);
    return false;
  }
  if (key.startsWith(RESERVED_PREFIX)) {
    ctx.report(keyNode, at, `names starting with ${RESERVED_PREFIX} are reserved for Pith`, `rename it, e.g. APP_${key.slice(RESERVED_PREFIX.length)}`);
    return false;
  }
  return true;
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
  if (/[\n\r]/.test(node.value)) {
    ctx.report(node, at, "the value contains a line break", "environment values must be a single line; pass longer text through a file in the image");
    return undefined;
  }
  if (node.value.includes("\0")) {
    ctx.report(node, at, "the value contains a NUL character", "remove the \\0 from the value");
    return undefined;
  }
  return node.value;
}
