/**
 * JSON with object keys sorted at every depth, so two values that are deeply equal serialize to
 * the same string whatever order their keys were written in: what an image's digest and a
 * snapshot's key hash, and how declarations are compared (model/declaration.ts).
 * Like JSON.stringify, it drops undefined-valued keys: `{a: undefined}` equals `{}`.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(v).sort()) sorted[key] = (v as Record<string, unknown>)[key];
    return sorted;
  });
}

/** Deeply equal as JSON, key order aside: "did anything change" before a write. */
export const sameJson = (a: unknown, b: unknown): boolean => canonicalJson(a) === canonicalJson(b);
