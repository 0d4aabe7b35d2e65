import type { BootTimings, Hypervisor, Machine, MachineExit, MachineSpec, PortForward } from "../hypervisor.ts";

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
    const ports = spec.image.capabilities.listen.map(({ port }) => {
      const hostPort = spec.hostPorts?.[port] ?? 20_000 + (this.nextPid % 40_000);
      return { guestPort: port, hostPort, url: `http://127.0.0.1:${hostPort}/` };
    });
    const machine = new FakeMachine(spec.id, this.nextPid++, ports, this.options.bootMs ?? 0);
    this.machines.set(spec.id, machine);
    void machine.whenExited().then(() => this.machines.delete(spec.id));
    return machine;
  }

  async recover(pids?: number[]): Promise<Machine[]> {
    return [...this.machines.values()].filter((m) => m.exit === undefined && (!pids || pids.includes(m.pid)));
  }

  /** Ends a machine as if its app exited with `code` (or crashed, without one). */
  crash(id: string, code?: number): void {
    this.machines.get(id)?.end({ code, reason: code === undefined ? "crashed" : `app exited with code ${code}` });
  }
}

class FakeMachine implements Machine {
  readonly accelerator = "tcg" as const;
  readonly consoleLog = "/dev/null";
  readonly timings: BootTimings = {};
  exit: MachineExit | undefined;
  private resolveExit!: (exit: MachineExit) => void;
  private readonly exited = new Promise<MachineExit>((resolve) => (this.resolveExit = resolve));
  private readonly ready: Promise<BootTimings>;

  constructor(
    readonly id: string,
    readonly pid: number,
    readonly ports: PortForward[],
    bootMs: number,
  ) {
    const started = performance.now();
    this.ready = new Promise<BootTimings>((resolve, reject) => {
      const timer = setTimeout(() => {
        Object.assign(this.timings, { vmmMs: 0, kernelMs: 0, initMs: 0, appMs: 0, readyMs: Math.round(performance.now() - started) });
        resolve({ ...this.timings });
      }, bootMs);
      void this.exited.then((exit) => {
        clearTimeout(timer);
        reject(new Error(`machine ended before it was ready: ${exit.reason}`));
      });
    });
    this.ready.catch(() => {});
  }

  whenReady(): Promise<BootTimings> {
    return this.ready;
  }

  whenExited(): Promise<MachineExit> {
    return this.exited;
  }

  detach(): void {}

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
