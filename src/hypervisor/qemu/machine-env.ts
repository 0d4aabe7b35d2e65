import { envProblems } from "../../model/env-rules.ts";
import { userError } from "../../shared/errors.ts";

/**
 * The last check before an env reaches init as `env K=V` lines: whatever let a bad one through
 * (an old object in the store, a caller that skipped the API), this machine fails to start with
 * a reason, and no line that init would split or cut is ever sent. Pith's own PITH_* values are
 * allowed here: the driver sets them.
 */
export function checkMachineEnv(machineId: string, env: Record<string, string> | undefined): void {
  const problems = envProblems(env ?? {}, { reserved: false });
  const first = problems[0];
  if (!first) return;
  const where = first.name === undefined ? "" : ` ${JSON.stringify(first.name)}:`;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : "";
  throw userError("INVALID_ENV", `invalid env for machine ${machineId}:${where} ${first.message}${more}`, first.hint);
}
