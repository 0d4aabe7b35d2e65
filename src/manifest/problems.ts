import { PithError } from "../shared/errors.ts";

/** One thing wrong with a manifest, located like a compiler diagnostic (line and column 1-based). */
export interface Problem {
  file: string;
  line: number;
  column: number;
  /** Where in the document, e.g. "listen[1]" or "env.PORT"; empty for whole-file problems. */
  path: string;
  message: string;
  hint?: string;
}

export function formatProblem(p: Problem): string {
  const where = `${p.file}:${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ""}${p.message}`;
  return p.hint ? `${where}\n  fix: ${p.hint}` : where;
}

/**
 * All problems found in one manifest, thrown together so a person can fix everything in one pass
 * instead of discovering mistakes one run at a time.
 */
export class ManifestError extends PithError {
  readonly problems: readonly Problem[];

  constructor(problems: Problem[]) {
    const sorted = [...problems].sort((a, b) => a.line - b.line || a.column - b.column);
    super("MANIFEST_INVALID", "user", sorted.map(formatProblem).join("\n"));
    this.name = "ManifestError";
    this.problems = sorted;
  }
}
