import { connect } from "node:net";

/**
 * HAProxy's runtime API on its admin socket: one connection per batch of commands (`;`-separated,
 * HAProxy answers them in order and closes). Batches run one at a time, in the order sent, so a
 * slot is filled before a map entry points at its backend.
 */
export class RuntimeApi {
  readonly #path: string;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(socketPath: string) {
    this.#path = socketPath;
  }

  /** Runs the commands in one connection; resolves with HAProxy's answer. */
  run(commands: readonly string[], timeoutMs = 5000): Promise<string> {
    const next = this.#queue.then(() => this.#send(commands.join(";") + "\n", timeoutMs));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  #send(text: string, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.#path);
      let answer = "";
      const timer = setTimeout(() => socket.destroy(new Error(`haproxy runtime API did not answer within ${timeoutMs} ms`)), timeoutMs);
      socket.setEncoding("utf8");
      socket.on("connect", () => socket.write(text));
      socket.on("data", (chunk: string) => (answer += chunk));
      socket.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.on("close", (hadError) => {
        clearTimeout(timer);
        if (!hadError) resolve(answer);
      });
    });
  }
}

/** Lines of an answer that say a command failed (HAProxy answers success with nothing or a note). */
export function runtimeErrors(answer: string): string[] {
  return answer
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => /^(unknown|no such|require|invalid|failed|can't|cannot|'.*' requires|entry not found)/i.test(line) || /\b(not found|error)\b/i.test(line));
}

/** Current sessions (scur) per backend, from `show stat` CSV. */
export function backendSessions(csv: string): Map<string, number> {
  const lines = csv.split("\n");
  const header = (lines[0] ?? "").replace(/^# /, "").split(",");
  const px = header.indexOf("pxname");
  const sv = header.indexOf("svname");
  const scur = header.indexOf("scur");
  const sessions = new Map<string, number>();
  if (px < 0 || sv < 0 || scur < 0) return sessions;
  for (const line of lines.slice(1)) {
    const fields = line.split(",");
    if (fields[sv] !== "BACKEND") continue;
    sessions.set(fields[px] ?? "", Number(fields[scur]) || 0);
  }
  return sessions;
}
