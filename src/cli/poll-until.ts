/**
 * How a CLI command waits for the cluster to reach a state: it looks (`look`), says what changed,
 * and looks again every `everyMs` until the state is `done` or `timeoutMs` has passed. The
 * command, not this, decides what a timeout means (its own error names what is left), so a
 * timeout returns the last state with `done: false`. A timeout of 0 looks once (`--no-watch`).
 */
export interface PollOptions<S> {
  timeoutMs: number;
  everyMs: number;
  /**
   * A line describing a state, written only when it differs from the last one written; a state
   * with nothing to say returns undefined.
   */
  progress?: { line: (state: S) => string | undefined; write: (line: string) => void };
}

export interface PollResult<S> {
  state: S;
  done: boolean;
  /** How many progress lines were written. */
  said: number;
}

export async function pollUntil<S>(look: () => Promise<S>, done: (state: S) => boolean, options: PollOptions<S>): Promise<PollResult<S>> {
  const deadline = Date.now() + options.timeoutMs;
  let last: string | undefined;
  let said = 0;
  for (;;) {
    const state = await look();
    const line = options.progress?.line(state);
    if (line !== undefined && line !== last) {
      options.progress!.write(line);
      last = line;
      said++;
    }
    if (done(state)) return { state, done: true, said };
    const left = deadline - Date.now();
    if (left <= 0) return { state, done: false, said };
    // The last look is at the deadline, not one interval after it.
    await new Promise((resolve) => setTimeout(resolve, Math.min(options.everyMs, left)));
  }
}
