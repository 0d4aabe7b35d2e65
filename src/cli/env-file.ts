import { readFileSync } from "node:fs";
import { userError } from "../shared/errors.ts";

/** Why `key` cannot be a machine's env variable, or undefined if it can. */
export function envKeyProblem(key: string): string | undefined {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return "expected KEY=VALUE, KEY made of letters, digits and _";
  if (key.startsWith("PITH_")) return "PITH_ variables are set by Pith";
  return undefined;
}

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
    const problem = eq <= 0 ? "expected KEY=VALUE" : envKeyProblem(line.slice(0, eq));
    if (problem) throw userError("BAD_FLAG", `--env-file ${path}:${index + 1}: ${problem}`, "each line is KEY=VALUE (e.g. API_TOKEN=pith_...), or a # comment");
    env[line.slice(0, eq)] = line.slice(eq + 1);
  });
  return env;
}
