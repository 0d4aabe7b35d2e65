import { readFileSync } from "node:fs";
import { envNameProblem, envValueProblem } from "../model/env-rules.ts";
import { userError } from "../shared/errors.ts";

/**
 * `--env-file FILE`: `KEY=VALUE` lines, blank lines and `#` comments skipped, values verbatim (no
 * quotes, no expansion). For secrets such as an API token: a value on the command line is visible
 * to every user of the host in `ps`, a file is not. Errors name the line, never its value.
 */
export function readEnvFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw userError("BAD_FLAG", `--env-file ${path}: ${(e as Error).message}`, "give a readable file of KEY=VALUE lines");
  }
  const env: Record<string, string> = {};
  text.split("\n").forEach((raw, index) => {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "" || line.trimStart().startsWith("#")) return;
    const eq = line.indexOf("=");
    // The value is never quoted back: it may be the secret the file is for.
    const problem = eq <= 0 ? "expected KEY=VALUE" : (envNameProblem(line.slice(0, eq)) ?? envValueProblem(line.slice(0, eq), line.slice(eq + 1)))?.message;
    if (problem) throw userError("BAD_FLAG", `--env-file ${path}:${index + 1}: ${problem}`, "each line is KEY=VALUE (e.g. API_TOKEN=pith_...), or a # comment");
    env[line.slice(0, eq)] = line.slice(eq + 1);
  });
  return env;
}
