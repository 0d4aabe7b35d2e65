import { setTimeout as sleep } from "node:timers/promises";
import { isApiUnavailable } from "../client/api-error.ts";
import { systemError } from "../shared/errors.ts";

/**
 * How a CLI command waits for the cluster to reach a state: it looks (`look`), says what changed,
 * and looks again every `everyMs` until the state is `done` or `timeoutMs` has passed. The
 * command, not this, decides what a timeout means (its own error names what is left), so a
 * timeout returns the last state with `done: false`. A timeout of 0 looks once (`--no-watch`).
 *
 * A look is bounded by the time left (at least LOOK_FLOOR_MS), so a stalled API cannot hold the
 * command past its --timeout by the client's own 30 s. Once a look has succeeded, one that fails
 * for want of the API (no connection, a 5xx while a server restarts) is tried again until the
 * deadline: one blip must not end a five-minute drain. A first look that fails ends the wait at
 * once: a wrong --server or token is said now, not after the timeout.
 */
export interface PollOptions<S> {
  timeoutMs: number;
  everyMs: number;
  /**
   * A line describing a state, written only when it differs from the last one written; a state
   * with nothing to say returns undefined.
   */
  progress?: { line: (state: S) => string | undefined; write: (line: string) => void };
  /** LOOK_FLOOR_MS unless given (tests shrink it). */
  lookFloorMs?: number;
}

export interface PollResult<S> {
  state: S;
  done: boolean;
  /** How many progress lines were written. */
  said: number;
  /** Why the last look failed, when it did (the state is then the one before it). */
  lastError?: unknown;
}

/** The shortest a look may take before it is abandoned: a loaded API answers within it. */
export const LOOK_FLOOR_MS = 5000;

export async function pollUntil<S>(look: (signal: AbortSignal) => Promise<S>, done: (state: S) => boolean, options: PollOptions<S>): Promise<PollResult<S>> {
  const deadline = Date.now() + options.timeoutMs;
  let seen: { state: S } | undefined;
  let lastError: unknown;
  let last: string | undefined;
  let said = 0;
  for (;;) {
    const signal = AbortSignal.timeout(Math.max(options.lookFloorMs ?? LOOK_FLOOR_MS, deadline - Date.now()));
    try {
      const state = await look(signal);
      seen = { state };
      lastError = undefined;
      const line = options.progress?.line(state);
      if (line !== undefined && line !== last) {
        options.progress!.write(line);
        last = line;
        said++;
      }
      if (done(state)) return { state, done: true, said };
    } catch (e) {
      const error = signal.aborted ? systemError("API_TIMEOUT", "the API did not answer in time", "is the server up and reachable? (pith get nodes)") : e;
      if (!seen || (!signal.aborted && !isApiUnavailable(e))) throw error;
      lastError = error;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      return { state: seen.state, done: false, said, ...(lastError !== undefined ? { lastError } : {}) };
    }
    // The last look is at the deadline, not one interval after it.
    await sleep(Math.min(options.everyMs, left));
  }
}

/** For a timeout's message: why the last look failed, if it did. */
export function lastLookNote(result: PollResult<unknown>): string {
  if (result.lastError === undefined) return "";
  return ` (the last look failed: ${result.lastError instanceof Error ? result.lastError.message : String(result.lastError)})`;
}
