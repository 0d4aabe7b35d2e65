import { readFile, writeFile } from "node:fs/promises";
import type { BootTimings, ClaimedIdentity, Hypervisor, Machine, MachineExit, MachineSpec, PortForward, SnapshotSaved } from "../hypervisor.ts";

/** What a fake snapshot file holds: enough to check a restore is of the same image. */
const FAKE_SNAPSHOT_MAGIC = "pith-fake-snapshot";

/**
 * A hypervisor without VMs, for controller tests and control-plane benchmarks (Nomad's
 * drivers/mock): machines "boot" after `bootMs`, are ready, and "run" until stopped. Its
 * machines live in the process's memory, so recover() finds those this instance started and
 * that a test has not marked as lost.
 */
export class FakeHypervisor implements Hypervisor {
  readonly name = "fake";
  private readonly machines = new Map<string, FakeMachine>();
  private nextPid = 100_000;

  constructor(private readonly options: { bootMs?: number; failStart?: (spec: MachineSpec) => string | undefined } = {}) {}

  async start(spec: MachineSpec): Promise<Machine> {
    const failure = this.options.failStart?.(spec);
    if (failure) throw new Error(failure);
    if (this.machines.get(spec.id)?.exit === undefined && this.machines.has(spec.id)) throw new Error(`machine ${spec.id} is already running`);
    if (spec.restoreFrom) await checkFakeSnapshot(spec.restoreFrom, spec.image.digest);
    const ports = spec.image.capabilities.listen.map(({ port }) => {
      const hostPort = spec.hostPorts?.[port] ?? 20_000 + (this.nextPid % 40_000);
      return { guestPort: port, hostPort, url: `http://127.0.0.1:${hostPort}/` };
    });
    const machine = new FakeMachine(spec.id, this.nextPid++, ports, spec.restoreFrom ? 0 : (this.options.bootMs ?? 0), spec.image.digest, spec.restoreFrom ? "snapshot" : "boot", spec.warmPool === true && spec.restoreFrom !== undefined, spec.env);
    this.machines.set(spec.id, machine);
    void machine.whenExited().then(() => this.machines.delete(spec.id));
    return machine;
  }

  async recover(pids?: number[]): Promise<Machine[]> {
    const found = [...this.machines.values()].filter((m) => m.exit === undefined && (!pids || pids.includes(m.pid)));
    // As QEMU's are found by their process name: a claimed warm machine by the id it started with.
    for (const m of found) m.id = m.identities[0]!.id;
    return found;
  }

  async snapshotTag(): Promise<string> {
    return "fake";
  }

  /** Ends a machine (by the id it has now) as if its app exited with `code` (or crashed, without one). */
  crash(id: string, code?: number): void {
    this.byId(id)?.end({ code, reason: code === undefined ? "crashed" : `app exited with code ${code}` });
  }

  /** The running machines, as tests inspect them (paused or not, which env they were given). */
  machinesRunning(): FakeMachine[] {
    return [...this.machines.values()].filter((m) => m.exit === undefined);
  }

  private byId(id: string): FakeMachine | undefined {
    return this.machines.get(id) ?? [...this.machines.values()].find((m) => m.id === id);
  }
}

async function checkFakeSnapshot(file: string, digest: string): Promise<void> {
  let saved: { magic?: string; image?: string };
  try {
    saved = JSON.parse(await readFile(file, "utf8")) as typeof saved;
  } catch (e) {
    throw new Error(`cannot restore from ${file}: ${(e as Error).message}`);
  }
  if (saved.magic !== FAKE_SNAPSHOT_MAGIC || saved.image !== digest) throw new Error(`cannot restore from ${file}: not a snapshot of image ${digest}`);
}

export class FakeMachine implements Machine {
  readonly accelerator = "tcg" as const;
  readonly consoleLog = "/dev/null";
  readonly timings: BootTimings = {};
  exit: MachineExit | undefined;
  private resolveExit!: (exit: MachineExit) => void;
  private readonly exited = new Promise<MachineExit>((resolve) => (this.resolveExit = resolve));
  private ready: Promise<BootTimings>;
  /** Paused by pause(), until claim(). */
  paused = false;
  /** Identities it was given: the one it started with, then each claim's. */
  readonly identities: ClaimedIdentity[];

  constructor(
    public id: string,
    readonly pid: number,
    readonly ports: PortForward[],
    bootMs: number,
    private readonly imageDigest: string,
    readonly startedFrom: "boot" | "snapshot",
    private readonly claimable: boolean,
    env: Record<string, string> | undefined,
  ) {
    this.identities = [{ id, ...(env ? { env } : {}) }];
    this.ready = this.readyAfter(bootMs);
  }

  private readyAfter(bootMs: number): Promise<BootTimings> {
    const started = performance.now();
    const ready = new Promise<BootTimings>((resolve, reject) => {
      const timer = setTimeout(() => {
        Object.assign(this.timings, { vmmMs: 0, kernelMs: 0, initMs: 0, appMs: 0, readyMs: Math.round(performance.now() - started) });
        resolve({ ...this.timings });
      }, bootMs);
      void this.exited.then((exit) => {
        clearTimeout(timer);
        reject(new Error(`machine ended before it was ready: ${exit.reason}`));
      });
    });
    ready.catch(() => {});
    return ready;
  }

  async pause(): Promise<void> {
    if (this.exit) throw new Error(`machine ${this.id} has ended`);
    this.paused = true;
  }

  async claim(identity: ClaimedIdentity): Promise<void> {
    if (!this.claimable) throw new Error(`machine ${this.id} was not started for a warm pool`);
    if (this.exit) throw new Error(`warm machine ${this.id} has ended`);
    this.id = identity.id;
    this.identities.push(identity);
    this.paused = false;
    this.ready = this.readyAfter(0);
  }

  whenReady(): Promise<BootTimings> {
    return this.ready;
  }

  whenExited(): Promise<MachineExit> {
    return this.exited;
  }

  detach(): void {}

  async saveSnapshot(file: string): Promise<SnapshotSaved> {
    const text = JSON.stringify({ magic: FAKE_SNAPSHOT_MAGIC, image: this.imageDigest, machine: this.id });
    await writeFile(file, text);
    return { bytes: Buffer.byteLength(text), ms: 0 };
  }

  async stop(): Promise<MachineExit> {
    this.end({ code: 0, reason: "app exited with code 0" });
    return this.exited;
  }

  end(exit: MachineExit): void {
    if (this.exit) return;
    this.exit = exit;
    this.resolveExit(exit);
  }
}
