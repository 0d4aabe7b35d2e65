import assert from "node:assert/strict";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { Hypervisor, MachineSpec } from "./hypervisor.ts";

export interface HypervisorContractOptions {
  /** A fresh hypervisor, and specs for machines of a long-running service and of a job that exits with code 3. */
  setup: () => Promise<{ hypervisor: Hypervisor; service: (id: string) => MachineSpec; job?: (id: string) => MachineSpec; cleanup?: () => Promise<void> }>;
  /** A second instance that should find the first one's machines (an agent restart). */
  restarted?: (first: Hypervisor) => Hypervisor;
  timeoutMs?: number;
}

/** What every Hypervisor implementation must do; each runs this suite (qemu in test/e2e, fake here). */
export function hypervisorContract(name: string, options: HypervisorContractOptions): void {
  describe(`Hypervisor contract: ${name}`, { timeout: options.timeoutMs ?? 120_000 }, () => {
    test("a started machine becomes ready with timings, and stops with its exit", async () => {
      const { hypervisor, service, cleanup } = await options.setup();
      try {
        const machine = await hypervisor.start(service("contract-a"));
        assert.equal(machine.id, "contract-a");
        assert.ok(machine.pid > 0);
        const timings = await machine.whenReady();
        assert.ok((timings.readyMs ?? -1) >= 0);
        assert.equal(machine.exit, undefined);
        const exit = await machine.stop(5000);
        assert.equal(exit.code, 0, exit.reason);
        assert.deepEqual(await machine.whenExited(), exit);
        assert.deepEqual(machine.exit, exit);
      } finally {
        await cleanup?.();
      }
    });

    test("an app that exits reports its code, and whenReady rejects if it never got ready", async (t) => {
      const { hypervisor, job, cleanup } = await options.setup();
      if (!job) return t.skip("no job spec for this implementation");
      try {
        const machine = await hypervisor.start(job("contract-job"));
        const exit = await machine.whenExited();
        assert.equal(exit.code, 3, exit.reason);
      } finally {
        await cleanup?.();
      }
    });

    test("recover finds running machines (all of them, or by saved pid) and not stopped ones", async (t) => {
      if (!options.restarted) return t.skip("this implementation cannot restart");
      const { hypervisor, service, cleanup } = await options.setup();
      try {
        const a = await hypervisor.start(service("contract-r1"));
        const b = await hypervisor.start(service("contract-r2"));
        await Promise.all([a.whenReady(), b.whenReady()]);
        await b.stop(5000);
        a.detach();
        const again = options.restarted(hypervisor);
        const found = await again.recover();
        assert.deepEqual(found.map((m) => [m.id, m.pid]), [["contract-r1", a.pid]]);
        assert.deepEqual((await again.recover([a.pid])).map((m) => m.id), ["contract-r1"]);
        assert.deepEqual(await again.recover([b.pid]), []);
        const adopted = found[0]!;
        assert.deepEqual(adopted.ports, a.ports, "an adopted machine still knows where its ports are forwarded");
        await adopted.whenReady();
        await adopted.stop(5000);
        await a.whenExited();
      } finally {
        await cleanup?.();
      }
    });

    test("a snapshot of a ready machine restores into a new machine that is ready at once", async () => {
      const { hypervisor, service, cleanup } = await options.setup();
      const dir = await mkdtemp(join(tmpdir(), "pith-contract-snapshot-"));
      try {
        const source = await hypervisor.start({ ...service("contract-s0"), snapshotSource: true });
        await source.whenReady();
        const file = join(dir, "state");
        const saved = await source.saveSnapshot(file);
        assert.equal(saved.bytes, (await stat(file)).size);
        await source.stop(0);

        const restored = await hypervisor.start({ ...service("contract-s1"), restoreFrom: file });
        assert.equal(restored.id, "contract-s1");
        assert.equal(restored.startedFrom, "snapshot");
        assert.equal(source.startedFrom, "boot");
        await restored.whenReady();
        const exit = await restored.stop(5000);
        assert.equal(exit.code, 0, exit.reason);
      } finally {
        await rm(dir, { recursive: true, force: true });
        await cleanup?.();
      }
    });

    test("restoring a file that is not a snapshot rejects and leaves nothing running", async () => {
      const { hypervisor, service, cleanup } = await options.setup();
      const dir = await mkdtemp(join(tmpdir(), "pith-contract-snapshot-"));
      try {
        const file = join(dir, "garbage");
        await writeFile(file, Buffer.alloc(4096, 0x5a));
        await assert.rejects(hypervisor.start({ ...service("contract-bad"), restoreFrom: file }), /restore/);
        assert.deepEqual((await hypervisor.recover()).map((m) => m.id), []);
      } finally {
        await rm(dir, { recursive: true, force: true });
        await cleanup?.();
      }
    });
  });
}
