import { userError } from "../shared/errors.ts";

/** A day: a wait longer than that is a mistake in the flag, not a plan. */
const MAX_TIMEOUT_MS = 86_400_000;

/**
 * A `--timeout` value, in ms: a number with a unit (250ms, 90s, 1.5m), or without one, in
 * seconds (what `rollout status --timeout 300` always meant, 2.5 included). Every command that
 * waits takes it this way.
 */
export function parseTimeoutFlag(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  const ms = m ? Math.round(Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "m" ? 60_000 : 1000)) : Number.NaN;
  if (!(ms > 0 && ms <= MAX_TIMEOUT_MS)) {
    throw userError("BAD_FLAG", `--timeout must be a duration like 90s or 5m (above 0, at most a day), got "${text}"`, "e.g. --timeout 2m");
  }
  return ms;
}

/** A timeout as the flag would take it: 250ms, 90s, 5m. */
export function formatTimeout(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
