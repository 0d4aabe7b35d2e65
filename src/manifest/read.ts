import { isMap, isScalar, isSeq } from "yaml";
import type { Ctx, YNode } from "./context.ts";
import { closest } from "./suggest.ts";

/**
 * Typed access to YAML nodes. Each reader either returns the value or reports what was expected
 * versus what was found and returns undefined, so callers can carry on and find more problems.
 */

export interface Entry { key: string; keyNode: YNode; value: YNode; at: string }
export interface Item { node: YNode; at: string }

export const child = (at: string, key: string): string => (at ? `${at}.${key}` : key);

export function isNothing(node: YNode): boolean {
  return node === null || node === undefined || (isScalar(node) && node.value === null);
}

export function describe(node: YNode): string {
  if (isNothing(node)) return "nothing";
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (!isScalar(node)) return "an unsupported value";
  const v = node.value;
  if (typeof v === "string") return `a string (${JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v)})`;
  const shown = node.source ?? String(v);
  if (typeof v === "number" || typeof v === "bigint") return `a number (${shown})`;
  if (typeof v === "boolean") return `a boolean (${shown})`;
  return `a value (${shown})`;
}

export function expected(ctx: Ctx, node: YNode, at: string, what: string, hint?: string): undefined {
  ctx.report(node, at, `expected ${what}, found ${describe(node)}`, hint);
  return undefined;
}

/** Reads a mapping; with `known`, any other key is reported (with a "did you mean" when close). */
export function readMap(ctx: Ctx, node: YNode, at: string, known?: readonly string[]): Map<string, Entry> | undefined {
  if (!isMap(node)) return expected(ctx, node, at, "a mapping");
  const entries = new Map<string, Entry>();
  for (const pair of node.items) {
    const keyNode = ctx.deref(pair.key, at);
    if (!isScalar(keyNode) || isNothing(keyNode)) {
      ctx.report(keyNode ?? pair.value, at, "every key must be a plain name");
      continue;
    }
    const key = String(keyNode.value);
    if (known && !known.includes(key)) {
      reportUnknown(ctx, keyNode, at, key, known);
      continue;
    }
    // Null (an empty `key:`) is kept; only a broken alias, already reported, yields undefined.
    const value = pair.value === null ? null : ctx.deref(pair.value, child(at, key));
    if (value !== undefined) entries.set(key, { key, keyNode, value, at: child(at, key) });
  }
  return entries;
}

function reportUnknown(ctx: Ctx, keyNode: YNode, at: string, key: string, known: readonly string[]): void {
  const guess = closest(key, known);
  const where = at ? ` in ${at}` : "";
  const hint = guess
    ? `did you mean "${guess}"?`
    : `known fields${where} are: ${known.join(", ")}`;
  ctx.report(keyNode, at, `unknown field "${key}"`, hint);
}

export function readList(ctx: Ctx, node: YNode, at: string, what = "a list", hint?: string): Item[] | undefined {
  if (!isSeq(node)) return expected(ctx, node, at, what, isScalar(node) && !isNothing(node) ? hint : undefined);
  const items: Item[] = [];
  node.items.forEach((raw, i) => {
    const itemAt = `${at}[${i}]`;
    const item = ctx.deref(raw, itemAt);
    if (item !== undefined) items.push({ node: item, at: itemAt });
  });
  return items;
}

export function readString(ctx: Ctx, node: YNode, at: string, what = "a string"): string | undefined {
  if (isScalar(node) && typeof node.value === "string") return node.value;
  const quotable = isScalar(node) && !isNothing(node);
  const hint = quotable ? `put the value in quotes: "${node.source ?? String(node.value)}"` : undefined;
  return expected(ctx, node, at, what, hint);
}

export function readInt(ctx: Ctx, node: YNode, at: string, what = "an integer"): number | undefined {
  if (isScalar(node) && typeof node.value === "number" && Number.isInteger(node.value)) return node.value;
  const quotedInt = isScalar(node) && typeof node.value === "string" && /^\d+$/.test(node.value.trim());
  return expected(ctx, node, at, what, quotedInt ? "remove the quotes" : undefined);
}

/** Checks an integer bound, reporting e.g. "port 70000 is out of range (1-65535)". */
export function checkRange(
  ctx: Ctx, node: YNode, at: string, value: number,
  { min, max, label, noun = "a value" }: { min: number; max: number; label?: string; noun?: string },
): number | undefined {
  if (value >= min && value <= max) return value;
  const what = label ? `${label} ${value}` : String(value);
  ctx.report(node, at, `${what} is out of range (${min}-${max})`, `use ${noun} between ${min} and ${max}`);
  return undefined;
}
