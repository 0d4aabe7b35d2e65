import { createConnection, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { systemError } from "../../shared/errors.ts";

type QmpReply = { return?: unknown; error?: { class: string; desc: string }; id?: number; event?: string; QMP?: unknown };

const MAX_LINE_CHARS = 1024 * 1024;

function parseReply(line: string): QmpReply | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as QmpReply) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A client for QEMU's machine protocol (QMP): JSON objects, one per line, over a unix socket.
 * Commands are matched to replies by id; asynchronous events go to listeners.
 */
export class QmpClient {
  private socket: Socket | undefined;
  private buffer = "";
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (e: Error) => void }>();
  private readonly eventListeners: ((event: string, data: unknown) => void)[] = [];
  private closedError: Error | undefined;

  /**
   * Connects, retrying every `retryMs` while QEMU creates the socket, and completes the
   * capabilities handshake. A restore waits on this (QEMU's start): a failed attempt costs
   * microseconds, a long interval costs half of itself on average.
   */
  static async connect(path: string, timeoutMs = 5000, retryMs = 20): Promise<QmpClient> {
    const client = new QmpClient();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await client.open(path);
        break;
      } catch (e) {
        if (Date.now() > deadline) throw systemError("QMP_UNAVAILABLE", `cannot connect to QEMU's monitor at ${path}: ${(e as Error).message}`);
        await sleep(retryMs);
      }
    }
    await client.execute("qmp_capabilities");
    return client;
  }

  private open(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      let greeted = false;
      const socket = createConnection(path);
      socket.setEncoding("utf8");
      socket.once("error", (e) => (greeted ? undefined : reject(e)));
      socket.on("data", (chunk: string) => {
        this.buffer += chunk;
        let nl: number;
        while ((nl = this.buffer.indexOf("\n")) >= 0) {
          const line = this.buffer.slice(0, nl).trim();
          this.buffer = this.buffer.slice(nl + 1);
          if (!line) continue;
          const message = parseReply(line);
          if (!message) return this.abandon(socket, `QEMU's monitor sent something that is not a QMP message: ${JSON.stringify(line.slice(0, 100))}`);
          if (message.QMP && !greeted) {
            greeted = true;
            this.socket = socket;
            resolve();
          } else this.dispatch(message);
        }
        // QEMU's replies to the commands Pith sends are small: a monitor that sends more is broken.
        if (this.buffer.length > MAX_LINE_CHARS) this.abandon(socket, `QEMU's monitor sent a line over ${MAX_LINE_CHARS} characters`);
      });
      socket.on("close", () => {
        if (this.socket !== socket) return; // a failed attempt while QEMU was still starting
        this.closedError = new Error("QEMU's monitor connection closed");
        for (const { reject } of this.pending.values()) reject(this.closedError);
        this.pending.clear();
      });
      socket.on("error", () => {});
    });
  }

  /** Gives up on a monitor that broke the protocol: pending commands fail, the connection closes. */
  private abandon(socket: Socket, why: string): void {
    this.buffer = "";
    this.closedError = systemError("QMP_PROTOCOL", why);
    for (const { reject } of this.pending.values()) reject(this.closedError);
    this.pending.clear();
    socket.destroy(this.closedError);
  }

  private dispatch(message: QmpReply & { data?: unknown }): void {
    if (message.event) {
      for (const listener of this.eventListeners) listener(message.event, message.data);
      return;
    }
    const waiter = message.id !== undefined ? this.pending.get(message.id) : undefined;
    if (!waiter) return;
    this.pending.delete(message.id!);
    if (message.error) waiter.reject(systemError("QMP_ERROR", `QEMU refused: ${message.error.desc} (${message.error.class})`));
    else waiter.resolve(message.return);
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (!this.socket || this.closedError) return Promise.reject(this.closedError ?? new Error("QMP not connected"));
    const id = this.nextId++;
    const payload = JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id });
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.socket!.write(payload + "\n");
    });
  }

  onEvent(listener: (event: string, data: unknown) => void): void {
    this.eventListeners.push(listener);
  }

  close(): void {
    this.socket?.destroy();
  }
}
