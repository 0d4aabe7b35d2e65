import type { Backend } from "./route.ts";

/** How long a backend that failed to accept a connection is avoided by other requests. */
export const UNHEALTHY_MS = 1000;

/** Skipped while any other backend is usable: a backend whose connect failed in the last UNHEALTHY_MS. */
const UNHEALTHY_PENALTY = 1e9;

/**
 * Fewest outstanding requests wins; ties go round-robin (the scan starts at `turn`, and a later
 * backend must be strictly better). Backends in `excluded` (they failed for this request) are never
 * chosen; recently unhealthy ones only when nothing else is left. No allocation.
 */
export function pickBackend(
  backends: readonly Backend[],
  turn: number,
  excluded: ReadonlySet<Backend> | undefined,
  unhealthyUntil: ReadonlyMap<Backend, { unhealthyUntil: number }>,
  now: number,
): Backend | undefined {
  const n = backends.length;
  let best: Backend | undefined;
  let bestScore = Infinity;
  for (let i = 0; i < n; i++) {
    const backend = backends[(turn + i) % n] as Backend;
    if (excluded?.has(backend)) continue;
    let score = backend.inFlight;
    const until = unhealthyUntil.get(backend)?.unhealthyUntil;
    if (until !== undefined && until > now) score += UNHEALTHY_PENALTY;
    if (score < bestScore) {
      best = backend;
      bestScore = score;
    }
  }
  return best;
}
