import { createConnection, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { systemError } from "../../shared/errors.ts";

/** A message from the guest's init (see src/guest/init/init.c for the protocol). */
export type GuestMessage =
  | { type: "init"; uptimeUs: number }
  | { type: "start"; uptimeUs: number }
  /** Init set a time that carried no uptime (a restore's) and asks for it anchored to this one. */
  | { type: "clock"; uptimeUs: number }
  | { type: "ready" }
  | { type: "status"; ready: boolean }
  | { type: "exit"; code: number }
  | { type: "error"; text: string }
  /** Init reports that the app broke the rules of its own pipe (fd 3): the machine is failed. */
  | { type: "abuse"; text: string };

export function parseGuestMessage(line: string): GuestMessage | undefined {
  const match = /^([a-z]+)(?: (.*))?$/.exec(line.trim());
  if (!match) return undefined;
  const [, word, arg = ""] = match;
  const integer = /^-?\d+$/.test(arg) ? Number(arg) : undefined;
  switch (word) {
    case "init":
    case "start":
    case "clock":
      return integer !== undefined ? { type: word, uptimeUs: integer } : undefined;
    case "ready":
      return { type: "ready" };
    case "status":
      return arg === "ready" || arg === "starting" ? { type: "status", ready: arg === "ready" } : undefined;
    case "exit":
      return integer !== undefined ? { type: "exit", code: integer } : undefined;
    case "error":
      return { type: "error", text: arg };
    case "abuse":
      return { type: "abuse", text: arg.slice(0, 512) };
    default:
      return undefined;
  }
}

/**
 * What a guest may send on its control channel. Init sends a handful of short lines per boot;
 * anything far beyond that is a guest (or an app that opened ttyS1) misbehaving, and the host
 * must not buffer it without bound or spend its time parsing it.
 */
export interface ControlLimits {
  /** Bytes in one line, newline excluded. */
  lineBytes: number;
  /** Lines that are not messages (garbage, or words this host does not know), over the channel's life. */
  unknownLines: number;
  /** Lines within any `rateWindowMs`. */
  linesPerWindow: number;
  rateWindowMs: number;
}

export const CONTROL_LIMITS: ControlLimits = { lineBytes: 4096, unknownLines: 64, linesPerWindow: 200, rateWindowMs: 1000 };

/** Why a channel gave up on its guest; the machine is failed with this reason. */
export const CONTROL_ABUSE = "ControlChannelAbuse";

export interface ControlHandlers {
  onMessage: (message: GuestMessage, at: number) => void;
  /** The guest broke the limits (or handling a message failed): the channel is closed. */
  onFault?: (reason: string) => void;
}

/**
 * The host's end of the control channel: the guest's second serial port, which QEMU exposes
 * as a unix socket. Lines in, lines out; a few unknown lines are ignored, so a newer guest can
 * say more than an older host understands. A guest that breaks the limits is cut off: the
 * channel reports a fault once and reads nothing more.
 */
export class ControlChannel {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private unknown = 0;
  private windowStart = 0;
  private windowLines = 0;
  private faulted = false;

  private constructor(
    private readonly socket: Socket,
    private readonly handlers: ControlHandlers,
    private readonly limits: ControlLimits,
  ) {
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", () => {});
  }

  private receive(chunk: Buffer): void {
    if (this.faulted) return;
    const at = performance.now();
    let from = 0;
    for (let nl = chunk.indexOf(10); nl >= 0 && !this.faulted; nl = chunk.indexOf(10, from)) {
      this.pending.push(chunk.subarray(from, nl));
      this.pendingBytes += nl - from;
      from = nl + 1;
      const line = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
      this.line(line, at);
    }
    if (this.faulted || from === chunk.length) return;
    this.pending.push(chunk.subarray(from));
    this.pendingBytes += chunk.length - from;
    if (this.pendingBytes > this.limits.lineBytes) this.fault(`the guest sent a control line over ${this.limits.lineBytes} bytes`);
  }

  private line(bytes: Buffer, at: number): void {
    if (bytes.length > this.limits.lineBytes) return this.fault(`the guest sent a control line over ${this.limits.lineBytes} bytes`);
    if (at - this.windowStart > this.limits.rateWindowMs) {
      this.windowStart = at;
      this.windowLines = 0;
    }
    if (++this.windowLines > this.limits.linesPerWindow) {
      return this.fault(`the guest sent more than ${this.limits.linesPerWindow} control lines within ${this.limits.rateWindowMs} ms`);
    }
    const message = parseGuestMessage(bytes.toString("utf8"));
    if (!message) {
      if (++this.unknown > this.limits.unknownLines) this.fault(`the guest sent more than ${this.limits.unknownLines} control lines that are not messages`);
      return;
    }
    try {
      this.handlers.onMessage(message, at);
    } catch (e) {
      // A host-side failure on one machine's message must stay that machine's problem.
      this.fault(`handling the guest's "${message.type}" failed: ${(e as Error).message}`, "ControlChannelError");
    }
  }

  private fault(why: string, reason = CONTROL_ABUSE): void {
    if (this.faulted) return;
    this.faulted = true;
    this.pending = [];
    this.socket.destroy();
    this.handlers.onFault?.(`${reason}: ${why}`);
  }

  static async connect(path: string, handlers: ControlHandlers, timeoutMs = 5000, limits: ControlLimits = CONTROL_LIMITS): Promise<ControlChannel> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = createConnection(path, () => resolve(s));
          s.once("error", reject);
        });
        return new ControlChannel(socket, handlers, limits);
      } catch (e) {
        if (Date.now() > deadline) throw systemError("CONTROL_UNAVAILABLE", `cannot reach the machine's control channel at ${path}: ${(e as Error).message}`);
        await sleep(10);
      }
    }
  }

  send(lines: string[]): void {
    for (const line of lines) {
      // The env is checked before a machine starts (machine-env.ts); this guards the protocol itself.
      if (/[\n\r\0]/.test(line)) throw systemError("CONTROL_LINE_INVALID", `control message must be one line: ${JSON.stringify(line.slice(0, 200))}`);
    }
    if (this.faulted) return;
    this.socket.write(lines.map((l) => `${l}\n`).join(""));
  }

  close(): void {
    this.socket.destroy();
  }
}
