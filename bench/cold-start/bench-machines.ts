import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Machine } from "../../src/hypervisor/hypervisor.ts";

/**
 * The machines a cold-start bench starts one run at a time, in a scratch dir of its own. Each is
 * stopped and its state dir removed after its run; whatever still runs at the end (a run that
 * threw) is stopped before the scratch dir goes, so a failed bench leaves no QEMU behind.
 */
export class BenchMachines {
  readonly work: string;
  private readonly running = new Set<Machine>();

  constructor(prefix: string) {
    this.work = mkdtempSync(join(tmpdir(), prefix));
  }

  started<M extends Machine>(machine: M): M {
    this.running.add(machine);
    return machine;
  }

  /** After a run: the machine stopped (1 s to shut down), its state dir removed. */
  async done(machine: Machine, stateDir: string): Promise<void> {
    await machine.stop(1000);
    this.running.delete(machine);
    rmSync(stateDir, { recursive: true, force: true });
  }

  async close(): Promise<void> {
    await Promise.all([...this.running].map((m) => m.stop(0)));
    rmSync(this.work, { recursive: true, force: true });
  }
}
