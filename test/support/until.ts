import { setTimeout as delay } from "node:timers/promises";

/** A look at the condition: a value once it holds; undefined or false while it does not yet. */
export type Probe<T> = () => T | undefined | false | Promise<T | undefined | false>;

export interface UntilOptions {
  timeoutMs: number;
  /** The pause between looks (default 10 ms): a probe that costs a request wants a longer one. */
  everyMs?: number;
  /** Extra context for the failure message (a log, the state seen), asked for only on failure. */
  context?: () => string | Promise<string>;
  /** A promise whose rejection ends the wait at once with its error (e.g. a process that died). */
  failing?: Promise<unknown>;
  /**
   * Give up on a probe call that has not settled after this long and call it again: a request
   * whose connection died without an error must not hang the wait past its timeout. Near the
   * deadline a call gets only the time left (but at least PROBE_FLOOR_MS).
   */
  probeTimeoutMs?: number;
  /**
   * Take a probe that throws as "not yet" (a server that is not listening yet) instead of ending
   * the wait with its error; the last such error is in the failure message. A GiveUp still ends it.
   */
  retryErrors?: boolean;
}

/**
 * What a probe throws when what it waits for can no longer happen (the machine failed): the wait
 * ends at once with it, even when other errors are retried.
 */
export class GiveUp extends Error {}

const UNSETTLED = Symbol("the probe call has not settled");

/** The least a probe call is given before it is abandoned, however close the deadline. */
const PROBE_FLOOR_MS = 1000;

/**
 * Resolves with the probe's first value that is neither undefined nor false; rejects after
 * `timeoutMs` with "timed out after N ms: <what>", the context and the probe's last error (if it
 * threw or hung). Tests wait on conditions rather than sleeps, so a slow machine makes them
 * slower, not flaky.
 */
export async function until<T>(what: string | (() => string | Promise<string>), probe: Probe<T>, options: UntilOptions): Promise<T> {
  const { timeoutMs, everyMs = 10, context, failing, probeTimeoutMs, retryErrors = false } = options;
  const deadline = performance.now() + timeoutMs;
  // Aborted however the wait ends, which clears every timer it set: none keeps the process alive.
  const ended = new AbortController();
  // Every look races this, so its rejection is handled even when it comes after the wait is over.
  const failed = new Promise<never>((_, reject) => void failing?.then(undefined, reject));
  let lastError: { error: unknown } | undefined;

  const look = async (): Promise<T | undefined> => {
    const called = new AbortController();
    const bound = probeTimeoutMs === undefined ? undefined : Math.min(probeTimeoutMs, Math.max(PROBE_FLOOR_MS, deadline - performance.now()));
    try {
      const result = probe();
      const value =
        bound === undefined ? await result : await Promise.race([result, delay(bound, UNSETTLED, { signal: AbortSignal.any([ended.signal, called.signal]) })]);
      if (value === UNSETTLED) {
        lastError = { error: new Error(`a probe call had not settled after ${Math.round(bound!)} ms`) };
        return undefined;
      }
      return value === false ? undefined : value;
    } catch (error) {
      if (!retryErrors || error instanceof GiveUp || ended.signal.aborted) throw error;
      lastError = { error };
      return undefined;
    } finally {
      called.abort();
    }
  };

  const failure = async (): Promise<Error> => {
    const lines = [`timed out after ${timeoutMs} ms: ${typeof what === "function" ? await what() : what}`];
    // A context that fails itself must not hide the timeout it was to explain.
    if (context) lines.push(await Promise.resolve().then(context).catch((error: unknown) => `(no context: ${String(error)})`));
    if (lastError) lines.push(`last probe error: ${String(lastError.error)}`);
    return new Error(lines.join("\n"), lastError && { cause: lastError.error });
  };

  try {
    for (;;) {
      const value = await Promise.race([look(), failed]);
      if (value !== undefined) return value;
      const left = deadline - performance.now();
      if (left <= 0) throw await failure();
      // Never past the deadline, so the last look is at the deadline rather than after it.
      await Promise.race([delay(Math.min(everyMs, left), undefined, { signal: ended.signal }), failed]);
    }
  } finally {
    ended.abort();
  }
}
