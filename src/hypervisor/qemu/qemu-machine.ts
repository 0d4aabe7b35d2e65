import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { openSync, closeSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { BootTimings, Machine, MachineExit, PortForward } from "../hypervisor.ts";
import { ControlChannel, type GuestMessage } from "./control-channel.ts";
import { QmpClient } from "./qmp-client.ts";
import { qemuArgv, type Accelerator, type QemuMachineSpec } from "./qemu-argv.ts";

export const QEMU_BINARY = "qemu-system-x86_64";

export interface LaunchOptions {
  spec: QemuMachineSpec;
  ports: PortForward[];
  /** Lines sent to init once it reports: clock, entropy, env. */
  config: string[];
  readyTimeoutMs: number;
  /** Stop waiting for init after this long (the KVM probe); undefined waits for the readiness timeout. */
  initTimeoutMs?: number;
}

/**
 * One QEMU process running one machine. It owns the process, the control channel and the boot
 * timings; it decides nothing about which accelerator or ports to use (QemuHypervisor does).
 */
export class QemuMachine implements Machine {
  readonly id: string;
  readonly accelerator: Accelerator;
  readonly ports: PortForward[];
  readonly consoleLog: string;
  readonly timings: BootTimings = {};
  exit: MachineExit | undefined;
  private readonly process: ChildProcess;
  private readonly startedAt = performance.now();
  private control: ControlChannel | undefined;
  private exitCode: number | undefined;
  private guestError: string | undefined;
  private readonly exited: Promise<MachineExit>;
  private readonly ready: Promise<BootTimings>;
  private readonly initSeen: Promise<boolean>;
  private resolveReady!: (t: BootTimings) => void;
  private resolveInit!: (seen: boolean) => void;
  private kernelStartedAt: number | undefined;
  private appStartedAt: number | undefined;

  constructor(private readonly options: LaunchOptions) {
    const { spec } = options;
    this.id = spec.machineId;
    this.accelerator = spec.accelerator;
    this.ports = options.ports;
    this.consoleLog = spec.consoleLog;

    // QEMU's own complaints go to a file beside the console, so they outlive this process.
    const qemuLog = openSync(join(spec.consoleLog, "..", "qemu.log"), "w");
    // Its own process group: a Ctrl-C meant for Pith must not kill the machine before init has
    // stopped the app gracefully.
    this.process = spawn(QEMU_BINARY, qemuArgv(spec), { stdio: ["ignore", qemuLog, qemuLog], detached: true });
    closeSync(qemuLog);

    this.exited = new Promise<MachineExit>((resolve) => {
      const settle = (exit: MachineExit) => resolve((this.exit = exit));
      this.process.once("exit", (status, signal) => void this.describeExit(status, signal).then(settle));
      this.process.once("error", (e) => settle({ code: undefined, reason: `cannot start ${QEMU_BINARY}: ${e.message}` }));
    });
    this.initSeen = new Promise<boolean>((resolve) => (this.resolveInit = resolve));
    this.ready = new Promise<BootTimings>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`not ready within ${Math.round(options.readyTimeoutMs / 1000)}s (see ${spec.consoleLog})`)),
        options.readyTimeoutMs,
      );
      this.resolveReady = (timings) => {
        clearTimeout(timer);
        resolve(timings);
      };
      void this.exited.then((exit) => {
        clearTimeout(timer);
        reject(new Error(`machine ended before it was ready: ${exit.reason}`));
      });
    });
    this.ready.catch(() => {});
    void this.exited.then(() => {
      this.resolveInit(false);
      this.control?.close();
    });
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  /** Connects the control channel; resolves false if init never reports within `initTimeoutMs`. */
  async attach(): Promise<boolean> {
    this.control = await ControlChannel.connect(this.options.spec.controlSocket, (m, at) => this.onGuestMessage(m, at)).catch(() => undefined);
    if (!this.control) return false;
    if (this.options.initTimeoutMs === undefined) return true;
    const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), this.options.initTimeoutMs).unref());
    return Promise.race([this.initSeen, timeout]);
  }

  private onGuestMessage(message: GuestMessage, at: number): void {
    switch (message.type) {
      case "init":
        // The guest's uptime dates the kernel's start on the host's clock.
        this.kernelStartedAt = at - message.uptimeUs / 1000;
        this.timings.vmmMs = round(Math.max(0, this.kernelStartedAt - this.startedAt));
        this.timings.kernelMs = round(message.uptimeUs / 1000);
        this.control?.send(this.options.config);
        this.resolveInit(true);
        break;
      case "start":
        if (this.kernelStartedAt === undefined) break;
        this.appStartedAt = this.kernelStartedAt + message.uptimeUs / 1000;
        this.timings.initMs = round(this.appStartedAt - this.kernelStartedAt - (this.timings.kernelMs ?? 0));
        break;
      case "ready":
        this.timings.appMs = round(at - (this.appStartedAt ?? at));
        this.timings.readyMs = round(at - this.startedAt);
        this.resolveReady({ ...this.timings });
        break;
      case "exit":
        this.exitCode = message.code;
        break;
      case "error":
        this.guestError = message.text;
        break;
    }
  }

  whenReady(): Promise<BootTimings> {
    return this.ready;
  }

  whenExited(): Promise<MachineExit> {
    return this.exited;
  }

  /**
   * Graceful first: init passes SIGTERM to the app and powers off when it exits. The kernels
   * have no ACPI, so QMP's system_powerdown would reach nobody; QMP `quit` is the firm stop,
   * SIGKILL the last resort.
   */
  async stop(graceMs = 5000): Promise<MachineExit> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return this.exited;
    try {
      this.control?.send([`shutdown ${graceMs}`]);
    } catch {
      // The channel is gone; the firmer steps below still work.
    }
    if (await settlesWithin(this.exited, graceMs + 1000)) return this.exited;
    const qmp = await QmpClient.connect(this.options.spec.qmpSocket, 1000).catch(() => undefined);
    await qmp?.execute("quit").catch(() => {});
    qmp?.close();
    if (!(await settlesWithin(this.exited, 2000))) this.process.kill("SIGKILL");
    return this.exited;
  }

  private async describeExit(status: number | null, signal: NodeJS.Signals | null): Promise<MachineExit> {
    if (this.exitCode !== undefined) return { code: this.exitCode, reason: `app exited with code ${this.exitCode}` };
    if (this.guestError) return { code: undefined, reason: `init failed: ${this.guestError}` };
    const console = await readFile(this.consoleLog, "utf8").catch(() => "");
    const panic = console.split("\n").find((l) => l.includes("Kernel panic"));
    if (panic) return { code: undefined, reason: `kernel panic: ${panic.trim()}` };
    if (signal) return { code: undefined, reason: `QEMU was killed (${signal})` };
    const qemuLog = (await readFile(join(this.consoleLog, "..", "qemu.log"), "utf8").catch(() => "")).trim();
    return { code: undefined, reason: `QEMU exited with status ${status}${qemuLog ? `: ${qemuLog.split("\n").slice(-3).join(" ")}` : ""}` };
  }
}

/** The first lines of a machine's runtime config: its clock and fresh entropy. */
export function baseConfigLines(): string[] {
  return [`time ${Date.now()}`, `seed ${randomBytes(32).toString("hex")}`];
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const result = await Promise.race([promise.then(() => true), timeout]);
  clearTimeout(timer);
  return result;
}

const round = (ms: number): number => Math.round(ms * 10) / 10;
