import { spawn, type SpawnOptions } from "node:child_process";
import { systemError } from "./errors.ts";

export interface ExecResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs a program to completion. A non-zero exit becomes a PithError that quotes the end of its
 * output, since the end is where compilers and make say what went wrong.
 */
export function execFile(
  command: string,
  args: string[],
  options: SpawnOptions & { onStdoutLine?: (line: string) => void; code?: string } = {},
): Promise<ExecResult> {
  const { onStdoutLine, code = "EXEC_FAILED", ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...spawnOptions, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let pending = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      stdout = keepTail(stdout + chunk);
      if (!onStdoutLine) return;
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) onStdoutLine(line);
    });
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr = keepTail(stderr + chunk)));
    child.on("error", (e) =>
      reject(systemError(code, `cannot run ${command}: ${e.message}`, `is ${command} installed? bash scripts/setup.sh installs what Pith needs`, e)),
    );
    child.on("close", (exit, signal) => {
      if (exit === 0) return resolve({ stdout, stderr });
      const tail = (stderr || stdout).trim().split("\n").slice(-15).join("\n");
      reject(systemError(code, `${command} ${args.slice(0, 4).join(" ")} failed (${signal ?? `exit ${exit}`}):\n${tail}`));
    });
  });
}

/** Output can be megabytes (a kernel build): keep only what an error message could use. */
function keepTail(text: string, max = 256 * 1024): string {
  return text.length > max ? text.slice(-max) : text;
}
