/**
 * Every error Pith reports to a person is a PithError: a stable code, whether the user or the
 * system is at fault, what happened, and how to fix it. The CLI prints these without a stack.
 */
export type ErrorKind = "user" | "system";

export class PithError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly hint: string | undefined;

  constructor(code: string, kind: ErrorKind, message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PithError";
    this.code = code;
    this.kind = kind;
    this.hint = hint;
  }
}

export const userError = (code: string, message: string, hint?: string): PithError =>
  new PithError(code, "user", message, hint);

export const systemError = (code: string, message: string, hint?: string, cause?: unknown): PithError =>
  new PithError(code, "system", message, hint, { cause });

export const isPithError = (e: unknown): e is PithError => e instanceof PithError;

/** What went wrong, in words, whatever was thrown (an Error, or a careless string or object). */
export const messageOf = (e: unknown): string => (e instanceof Error ? e.message : typeof e === "string" ? e : JSON.stringify(e) ?? String(e));
