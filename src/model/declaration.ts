import { canonicalJson } from "../shared/canonical-json.ts";

/** The part of an object its writer declares: the spec and the labels (no labels = none). */
export interface Declared {
  spec: unknown;
  metadata: { labels?: Record<string, string> | undefined };
}

/**
 * The declaration as one string: equal for equal declarations whatever the key order, so it can
 * be compared, or kept as a memo key (the GUI's manifest editor follows the live object by it).
 */
export const declarationOf = (object: Declared): string => canonicalJson({ spec: object.spec, labels: object.metadata.labels ?? {} });

/**
 * Writing `b` over `a` would change nothing that was declared: the rule behind an idempotent
 * create (the API), `pith apply`'s "unchanged", and a reconciler ignoring its own status writes.
 */
export const sameDeclaration = (a: Declared, b: Declared): boolean => declarationOf(a) === declarationOf(b);
