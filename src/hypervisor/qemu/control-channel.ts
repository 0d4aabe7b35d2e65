import { createConnection, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { systemError } from "../../shared/errors.ts";

/** A message from the guest's init (see src/guest/init/init.c for the protocol). */
export type GuestMessage =
  | { type: "init"; uptimeUs: number }
  | { type: "start"; uptimeUs: number }
  | { type: "ready" }
  | { type: "status"; ready: boolean }
  | { type: "exit"; code: number }
  | { type: "error"; text: string };

export function parseGuestMessage(line: string): GuestMessage | undefined {
  const match = /^([a-z]+)(?: (.*))?$/.exec(line.trim());
  if (!match) return undefined;
  const [, word, arg = ""] = match;
  const integer = /^-?\d+$/.test(arg) ? Number(arg) : undefined;
  switch (word) {
    case "init":
    case "start":
      return integer !== undefined ? { type: word, uptimeUs: integer } : undefined;
    case "ready":
      return { type: "ready" };
    case "status":
      return arg === "ready" || arg === "starting" ? { type: "status", ready: arg === "ready" } : undefined;
    case "exit":
      return integer !== undefined ? { type: "exit", code: integer } : undefined;
    case "error":
      return { type: "error", text: arg };
    default:
      return undefined;
  }
}

/**
 * The host's end of the control channel: the guest's second serial port, which QEMU exposes
 * as a unix socket. Lines in, lines out; unknown lines are ignored, so a newer guest can say
 * more than an older host understands.
 */
export class ControlChannel {
  private constructor(
    private readonly socket: Socket,
    private readonly onMessage: (message: GuestMessage, at: number) => void,
  ) {
    let buffer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      const at = performance.now();
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const message = parseGuestMessage(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (message) onMessage(message, at);
      }
    });
    socket.on("error", () => {});
  }

  static async connect(path: string, onMessage: (message: GuestMessage, at: number) => void, timeoutMs = 5000): Promise<ControlChannel> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = createConnection(path, () => resolve(s));
          s.once("error", reject);
        });
        return new ControlChannel(socket, onMessage);
      } catch (e) {
        if (Date.now() > deadline) throw systemError("CONTROL_UNAVAILABLE", `cannot reach the machine's control channel at ${path}: ${(e as Error).message}`);
        await sleep(10);
      }
    }
  }

  send(lines: string[]): void {
    for (const line of lines) {
      if (/[\n\0]/.test(line)) throw new Error(`control message must be one line: ${JSON.stringify(line)}`);
    }
    this.socket.write(lines.map((l) => `${l}\n`).join(""));
  }

  close(): void {
    this.socket.destroy();
  }
}
