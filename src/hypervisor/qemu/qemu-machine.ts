import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { lchown, lstat, rm, stat } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { dirname, join } from "node:path";
import type { BootTimings, ClaimedIdentity, Machine, MachineExit, PortForward, SnapshotSaved } from "../hypervisor.ts";
import { systemError } from "../../shared/errors.ts";
import { logTailText } from "../../shared/file-tail.ts";
import { watchConsoleLog, type ConsoleLimits, type ConsoleWatcher } from "./console-log.ts";
import { CONTROL_ABUSE, ControlChannel, type ControlLimits, type GuestMessage } from "./control-channel.ts";
import { lastLogLine } from "./net-helper.ts";
import type { Accelerator } from "./qemu-argv.ts";
import { QmpClient } from "./qmp-client.ts";
import type { VmProcess } from "./vm-process.ts";
import type { JailHandle, JailReport } from "../../jail/jailer.ts";

export interface QemuMachineOptions {
  machineId: string;
  accelerator: Accelerator;
  process: VmProcess;
  /** The machine's pith-net, when it has a network: the machine fails if it dies first. */
  network?: VmProcess;
  ports: PortForward[];
  consoleLog: string;
  controlSocket: string;
  qmpSocket: string;
  /**
   * The lines sent to init once it reports (clock, entropy, env); none for an adopted machine.
   * Made when they are sent: the clock line carries the host's time of that moment, not of the
   * start request a boot or a restore earlier.
   */
  config: (anchor?: ClockAnchor) => string[];
  readyTimeoutMs: number;
  /** performance.now() when the machine was asked for: boot timings count from here. */
  requestedAt: number;
  /**
   * Resumed from a snapshot: init is already past its boot, waiting in its loop, so the config
   * (which then ends with "restored") goes out as soon as the channel is up.
   */
  restored?: boolean;
  /**
   * A warm-pool machine: the lines that give it a claimed identity (clock, seed, env, then
   * "restored"), made when it is claimed. Absent: the machine cannot be claimed.
   */
  claimConfig?: (identity: ClaimedIdentity) => string[];
  /**
   * The restore handshake with the machine's own identity (clock, seed, its env, then
   * "restored"), run `times` times just before it is frozen: a snapshot source before it is
   * saved, a warm machine before it is paused. See rehearseRestore. Absent: frozen as it is.
   */
  rehearsal?: { lines: () => string[]; times: number };
  /** The machine's jail: reported with the machine, asked why it ended, released when it is gone. */
  jail?: JailHandle;
  /** What the guest may send on its control channel and write to its console (tests shrink them). */
  limits?: { control?: ControlLimits; console?: ConsoleLimits };
}

/**
 * One QEMU process running one machine: started by this driver, or adopted after a restart.
 * It owns the control channel and the boot timings; it decides nothing about accelerators or
 * ports (QemuHypervisor does).
 */
export class QemuMachine implements Machine {
  /** Its id; a claimed warm machine takes its Machine object's (its QEMU keeps the name it started with). */
  id: string;
  readonly accelerator: Accelerator;
  readonly ports: PortForward[];
  readonly consoleLog: string;
  readonly timings: BootTimings = {};
  readonly startedFrom: "boot" | "snapshot";
  readonly jail: JailReport | undefined;
  exit: MachineExit | undefined;
  /** Timings count from here: the start, or for a claimed warm machine the claim. */
  private startedAt: number;
  private control: ControlChannel | undefined;
  private exitCode: number | undefined;
  private guestError: string | undefined;
  /** Why the host gave up on this machine (it broke a limit), which becomes its exit reason. */
  private failure: string | undefined;
  private readonly console: ConsoleWatcher;
  private stopRequested = false;
  private readonly exited: Promise<MachineExit>;
  private ready!: Promise<BootTimings>;
  private readonly initSeen: Promise<boolean>;
  private resolveReady!: (t: BootTimings) => void;
  private resolveInit!: (seen: boolean) => void;
  private kernelStartedAt: number | undefined;
  /** The offset from the host's time of the last time sent without an anchor, until init asks (see answerClock). */
  private unanchoredClockOffsetMs: number | undefined;
  private appStartedAt: number | undefined;

  constructor(private readonly options: QemuMachineOptions) {
    this.id = options.machineId;
    this.startedAt = options.requestedAt;
    this.accelerator = options.accelerator;
    this.ports = options.ports;
    this.consoleLog = options.consoleLog;
    this.startedFrom = options.restored ? "snapshot" : "boot";
    this.jail = options.jail?.report;
    this.console = watchConsoleLog(options.consoleLog, (reason) => this.fail(reason), options.limits?.console);

    this.exited = options.process.exited.then(async ({ status, signal, spawnError }) => {
      const exit = spawnError
        ? { code: undefined, reason: `cannot start QEMU: ${spawnError.message}` }
        : await this.describeExit(status, signal);
      // Released only once the reason is known: the reason may be in the cgroup it removes.
      await options.jail?.release().catch(() => {});
      this.exit = exit;
      this.console.stop();
      this.resolveInit(false);
      this.control?.close();
      this.takePausedQmp()?.close();
      if (options.network) await endNetHelper(options.network);
      return exit;
    });
    if (options.network) this.watchNetwork(options.network);
    this.initSeen = new Promise<boolean>((resolve) => (this.resolveInit = resolve));
    this.armReady();
  }

  /** A fresh readiness: resolved by init's next `ready`, rejected by the timeout or the machine's end. */
  private armReady(): void {
    const { readyTimeoutMs, consoleLog } = this.options;
    this.ready = new Promise<BootTimings>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready within ${Math.round(readyTimeoutMs / 1000)}s (see ${consoleLog})`)), readyTimeoutMs);
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
  }

  /**
   * pith-net exits 0 when QEMU closes the stream, i.e. when QEMU is ending anyway (an adopted
   * one's status is unknown, so it gets the same benefit of the doubt). Otherwise the machine has
   * lost its network for good: it is stopped, and its exit says why.
   */
  private watchNetwork(network: VmProcess): void {
    void network.exited.then(async ({ status, signal }) => {
      const qemuEnding = status === 0 || (network.adopted && status === null);
      if (qemuEnding && (await settlesWithin(this.options.process.exited, 2000))) return;
      if (this.stopRequested || !this.options.process.isRunning()) return;
      const how = signal ? `killed by ${signal}` : status !== null ? `status ${status}` : "it is gone";
      const said = await lastLogLine(join(dirname(this.consoleLog), "net.log"), "");
      this.failure ??= `network helper exited: ${how}${said ? ` (${said})` : ""}`;
      await this.stop(1000);
    });
  }

  get pid(): number {
    return this.options.process.pid;
  }

  /**
   * Connects the control channel. A new machine's init then reports and gets its config; an
   * adopted machine is asked for its state. Resolves false if init does not report within
   * `initTimeoutMs` (the KVM probe); undefined waits no further than the connection.
   */
  async attach(initTimeoutMs?: number): Promise<boolean> {
    const handlers = { onMessage: (m: GuestMessage, at: number) => this.onGuestMessage(m, at), onFault: (reason: string) => this.fail(reason) };
    this.control = await ControlChannel.connect(await vmmSocket(this.options.controlSocket), handlers, undefined, this.options.limits?.control).catch(() => undefined);
    if (!this.control) return false;
    if (this.options.process.adopted) {
      this.control.send(["status"]);
      return true;
    }
    if (this.options.restored) {
      this.sendConfig(this.options.config());
      return true;
    }
    if (initTimeoutMs === undefined) return true;
    const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), initTimeoutMs).unref());
    return Promise.race([this.initSeen, timeout]);
  }

  /**
   * Sends config lines, noting how far the time they carry is set off the host's (a snapshot
   * source's or a warm machine's runs behind): init asks for it again anchored (`clock`).
   */
  private sendConfig(lines: string[]): void {
    const time = lines.map((l) => /^time (-?\d+)$/.exec(l)).find((m) => m);
    if (time) this.unanchoredClockOffsetMs = Number(time[1]) - Date.now();
    this.control?.send(lines);
  }

  /**
   * The time again, dated by init's question, which init sent as soon as it had set the time we
   * sent unanchored (a restore's, queued before the guest ran again). Once per time sent: a guest
   * that asks more gets no more.
   */
  private answerClock(uptimeUs: number, at: number): void {
    const offsetMs = this.unanchoredClockOffsetMs;
    if (offsetMs === undefined) return;
    this.unanchoredClockOffsetMs = undefined;
    const anchor = { unixMs: hostTimeAt(at) + offsetMs, uptimeUs };
    this.control?.send([`time ${anchor.unixMs} ${anchor.uptimeUs}`]);
  }

  private onGuestMessage(message: GuestMessage, at: number): void {
    switch (message.type) {
      case "init":
        // The guest's uptime dates the kernel's start on the host's clock.
        this.kernelStartedAt = at - message.uptimeUs / 1000;
        this.timings.vmmMs = round(Math.max(0, this.kernelStartedAt - this.startedAt));
        this.timings.kernelMs = round(message.uptimeUs / 1000);
        // Dated by the report, which init sent right after reading its uptime: init carries the
        // time forward over however long the config takes to reach it.
        this.control?.send(this.options.config({ unixMs: hostTimeAt(at), uptimeUs: message.uptimeUs }));
        this.resolveInit(true);
        break;
      case "clock":
        this.answerClock(message.uptimeUs, at);
        break;
      case "start":
        if (this.kernelStartedAt === undefined) break;
        this.appStartedAt = this.kernelStartedAt + message.uptimeUs / 1000;
        this.timings.initMs = round(this.appStartedAt - this.kernelStartedAt - (this.timings.kernelMs ?? 0));
        break;
      case "ready":
        if (this.appStartedAt !== undefined) this.timings.appMs = round(Math.max(0, at - this.appStartedAt));
        if (!this.options.process.adopted) this.timings.readyMs = round(at - this.startedAt);
        this.settleReady();
        break;
      case "status":
        if (message.ready) this.settleReady();
        break;
      case "exit":
        this.exitCode = message.code;
        break;
      case "error":
        this.guestError = message.text;
        break;
      case "abuse":
        this.fail(`${CONTROL_ABUSE}: ${message.text}`);
        break;
    }
  }

  /**
   * Ends a machine that broke a limit (its control channel, its console): at once, since a guest
   * that floods is not trusted to shut down politely. Its exit reason is `reason`.
   */
  private fail(reason: string): void {
    if (this.failure !== undefined || this.exit) return;
    this.failure = reason;
    this.options.process.kill("SIGKILL");
  }

  /** Set while `cont` waits for its reply: a guest that runs may report ready before the reply is read. */
  private resuming: Promise<void> | undefined;

  /** Readiness with the timings as they stand, once any `cont` under way has recorded restoreMs. */
  private settleReady(): void {
    if (this.resuming) void this.resuming.then(() => this.resolveReady({ ...this.timings }));
    else this.resolveReady({ ...this.timings });
  }

  /**
   * QMP `cont` for a restored or claimed machine, then restoreMs: the time from `since` until the
   * guest runs. A `ready` read before cont's reply waits for it, so its timings carry restoreMs.
   */
  async resume(qmp: Pick<QmpClient, "execute">, since: number): Promise<void> {
    const cont = qmp.execute("cont").then(() => {
      this.timings.restoreMs = round(performance.now() - since);
    });
    this.resuming = cont.catch(() => {});
    try {
      await cont;
    } finally {
      this.resuming = undefined;
    }
  }

  /**
   * QMP `stop`, after the rehearsals (for the guest library, a scavenge: a warm-up's garbage
   * would otherwise be collected on the claimed machine's first requests): the guest runs nothing
   * until `claim`. Its control channel and this QMP connection stay open, so a claim costs no
   * connection and greeting (QEMU takes one QMP client at a time: stop() lets go of it first).
   */
  async pause(): Promise<void> {
    await this.rehearse();
    const qmp = await QmpClient.connect(await vmmSocket(this.options.qmpSocket), 5000);
    try {
      await qmp.execute("stop");
    } catch (e) {
      qmp.close();
      throw e;
    }
    this.pausedQmp = qmp;
  }

  private pausedQmp: QmpClient | undefined;

  /** The QMP connection held since pause(), handed over once (or none). */
  private takePausedQmp(): QmpClient | undefined {
    const qmp = this.pausedQmp;
    this.pausedQmp = undefined;
    return qmp;
  }

  /**
   * The restore handshake again, for a paused warm machine: its new id, env, clock and seed are
   * queued on the control channel, then QMP `cont`; init applies them and tells the app, as after
   * a restore, and the machine is ready again only once the app has answered.
   */
  async claim(identity: ClaimedIdentity): Promise<void> {
    if (!this.options.claimConfig) throw systemError("NOT_A_WARM_MACHINE", `machine ${this.id} was not started for a warm pool`);
    if (!this.control || this.exit) throw systemError("WARM_MACHINE_GONE", `warm machine ${this.id} has ended or lost its control channel`);
    const lines = this.options.claimConfig(identity);
    const claimedAt = performance.now();
    this.id = identity.id;
    this.startedAt = claimedAt;
    for (const key of Object.keys(this.timings) as (keyof BootTimings)[]) delete this.timings[key];
    this.armReady();
    this.sendConfig(lines);
    const qmp = this.takePausedQmp() ?? (await QmpClient.connect(await vmmSocket(this.options.qmpSocket), 5000));
    try {
      await this.resume(qmp, claimedAt);
    } finally {
      qmp.close();
    }
  }

  detach(): void {
    // QEMU serves one control connection at a time: closing ours lets the next agent attach.
    this.control?.close();
    this.control = undefined;
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
    this.stopRequested = true;
    const paused = this.takePausedQmp();
    if (paused) {
      // A paused guest cannot shut down politely, and its app has served no one: quit at once.
      await paused.execute("quit").catch(() => {});
      paused.close();
      if (await settlesWithin(this.exited, 2000)) return this.exited;
    }
    if (!this.options.process.isRunning()) return this.exited;
    try {
      this.control?.send([`shutdown ${graceMs}`]);
    } catch {
      // The channel is gone; the firmer steps below still work.
    }
    if (await settlesWithin(this.exited, graceMs + 1000)) return this.exited;
    const qmp = await vmmSocket(this.options.qmpSocket).then((path) => QmpClient.connect(path, 1000)).catch(() => undefined);
    await qmp?.execute("quit").catch(() => {});
    qmp?.close();
    if (!(await settlesWithin(this.exited, 2000))) this.options.process.kill("SIGKILL");
    return this.exited;
  }

  /**
   * Runs the restore handshake in the machine, with its own identity, and waits for init's
   * `ready`. Whatever code a restore runs in the guest (the kernel's serial and pipe paths, init,
   * and in node the stream that reads the notice, the guest library, node internals it loads
   * lazily) is then compiled and its inline caches filled in the saved memory. Measured
   * (bench/cold-start/restore-profile.ts), a restore without it spent most of its time in V8's
   * parser and compilers, every one of their instructions translated afresh by TCG. The guest
   * library sees that nothing changed and runs no onRestore hook; it empties V8's young
   * generation instead. A guest that does not answer fails the save (or the pause) at its ready
   * timeout; nothing half-rehearsed is ever saved or pooled.
   */
  private async rehearseRestore(lines: string[]): Promise<void> {
    if (!this.control || this.exit) throw systemError("SNAPSHOT_FAILED", `machine ${this.id} has no control channel to rehearse its restore on`);
    this.armReady();
    this.sendConfig(lines);
    try {
      await this.ready;
    } catch (e) {
      throw systemError("SNAPSHOT_FAILED", `machine ${this.id} did not finish rehearsing its restore: ${(e as Error).message}`);
    }
  }

  /** The rehearsals this machine was started with, before it is frozen (saved or paused). */
  private async rehearse(): Promise<void> {
    const { rehearsal } = this.options;
    for (let i = 0; rehearsal && i < rehearsal.times; i++) await this.rehearseRestore(rehearsal.lines());
  }

  /**
   * QEMU streams its state to a unix socket Pith listens on, in the directory the VMM may write,
   * and Pith writes the file: a jailed QEMU can neither run `exec:` (its seccomp filter denies
   * spawning) nor open a path outside its jail.
   */
  async saveSnapshot(file: string): Promise<SnapshotSaved> {
    const started = performance.now();
    await this.rehearse();
    const runDir = dirname(this.options.qmpSocket);
    const socketPath = join(runDir, "migrate.sock");
    await rm(socketPath, { force: true });
    let received: Promise<void> | undefined;
    const server = createServer({ allowHalfOpen: false }, (socket: Socket) => {
      server.close(); // one stream only
      received ??= pipeline(socket, createWriteStream(file, { mode: 0o600 }));
      received.catch(() => {});
    });
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(socketPath, resolve));
    // The VMM runs as the owner of its run dir; the socket must be its to connect to. lchown:
    // that directory is the VMM's, so whatever is at the path may be its symlink to a host file.
    let qmp: QmpClient | undefined;
    try {
      const owner = (await stat(runDir)).uid;
      await lchown(socketPath, owner, owner);
      qmp = await QmpClient.connect(await vmmSocket(this.options.qmpSocket), 5000);
      // Paused first, so the state is one instant's and restored machines start paused too.
      await qmp.execute("stop");
      // The default cap (32 MiB/s) would make saving a 70 MB machine take seconds.
      await qmp.execute("migrate-set-parameters", { "max-bandwidth": Number.MAX_SAFE_INTEGER });
      await qmp.execute("migrate", { uri: `unix:${socketPath}` });
      for (;;) {
        const state = await qmp.execute<{ status: string; "error-desc"?: string }>("query-migrate");
        if (state.status === "completed") break;
        if (state.status === "failed" || state.status === "cancelled") {
          throw systemError("SNAPSHOT_FAILED", `QEMU could not save machine ${this.id}: ${state["error-desc"] ?? state.status}`);
        }
        await sleep(5);
      }
      if (!received) throw systemError("SNAPSHOT_FAILED", `QEMU reported machine ${this.id} saved but never connected to ${socketPath}`);
      await received;
    } catch (e) {
      await rm(file, { force: true });
      throw e;
    } finally {
      // Whatever failed, nothing is left listening or connected.
      qmp?.close();
      server.close();
      await rm(socketPath, { force: true });
    }
    return { bytes: (await stat(file)).size, ms: round(performance.now() - started) };
  }

  private async describeExit(status: number | null, signal: NodeJS.Signals | null): Promise<MachineExit> {
    if (this.failure !== undefined) return { code: undefined, reason: this.failure };
    if (this.exitCode !== undefined) return { code: this.exitCode, reason: `app exited with code ${this.exitCode}` };
    const jailed = await this.options.jail?.explain(signal).catch(() => undefined);
    if (jailed) return { code: undefined, reason: jailed };
    if (this.guestError) return { code: undefined, reason: `init failed: ${this.guestError}` };
    const console = await logTailText(this.consoleLog).catch(() => "");
    const panic = console.split("\n").find((l) => l.includes("Kernel panic"));
    if (panic) return { code: undefined, reason: `kernel panic: ${panic.trim()}` };
    if (this.options.process.adopted) return { code: undefined, reason: this.stopRequested ? "stopped" : "QEMU exited (adopted: its status is not known)" };
    if (signal) return { code: undefined, reason: `QEMU was killed (${signal})` };
    // Only its end: what QEMU logs can be made to grow by the guest.
    const qemuLog = (await logTailText(join(dirname(this.consoleLog), "qemu.log"), 4096).catch(() => "")).trim();
    return { code: undefined, reason: `QEMU exited with status ${status}${qemuLog ? `: ${qemuLog.split("\n").slice(-3).join(" ")}` : ""}` };
  }
}

/**
 * A socket the VMM made, checked before Pith (often root) connects to it. The VMM owns its run
 * dir, so a compromised one could swap a socket for a symlink to a socket of the host's; a path
 * that is not a socket itself is refused. (A swap timed between this check and the connect is
 * still possible; Pith listening and QEMU connecting would close it, see ARCHITECTURE.md.)
 */
export async function vmmSocket(path: string): Promise<string> {
  const info = await lstat(path).catch(() => undefined);
  if (info && !info.isSocket()) {
    throw systemError("VMM_SOCKET_REPLACED", `${path} is not a socket (${info.isSymbolicLink() ? "a symlink" : "another kind of file"}): refusing to connect to it`, "the machine's VMM may be compromised: stop it and look at its state dir");
  }
  return path;
}

/** The host's wall-clock time (ms) at `at`, a performance.now() stamp (when a guest message arrived). */
const hostTimeAt = (at: number): number => Math.round(Date.now() - (performance.now() - at));

/** The host's time when the guest's uptime was uptimeUs (when the host got init's report). */
export interface ClockAnchor {
  unixMs: number;
  uptimeUs: number;
}

/**
 * The first lines of a machine's runtime config: its clock (maybe set off) and fresh entropy.
 * Without an anchor the clock line carries the host's time now, which the guest sets on arrival.
 */
export function baseConfigLines(clockOffsetMs = 0, anchor?: ClockAnchor): string[] {
  const time = anchor ? `time ${anchor.unixMs + clockOffsetMs} ${anchor.uptimeUs}` : `time ${Date.now() + clockOffsetMs}`;
  return [time, `seed ${randomBytes(32).toString("hex")}`];
}

/** It ends by itself once QEMU has closed the stream; the kill is for one that hangs. */
async function endNetHelper(network: VmProcess): Promise<void> {
  if (await settlesWithin(network.exited, 2000)) return;
  network.kill("SIGKILL");
  await network.exited;
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const result = await Promise.race([promise.then(() => true), timeout]);
  clearTimeout(timer);
  return result;
}

const round = (ms: number): number => Math.round(ms * 10) / 10;
export { QEMU_BINARY } from "./qemu-binary.ts";
