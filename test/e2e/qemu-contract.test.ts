import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hypervisorContract } from "../../src/hypervisor/hypervisor-contract.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import type { MachineSpec } from "../../src/hypervisor/hypervisor.ts";
import { appImage, bootable } from "../support/images.ts";
import { missingForMachines } from "../support/machines.ts";

const skip = missingForMachines();

if (skip) {
  const { test } = await import("node:test");
  test("Hypervisor contract: qemu", { skip }, () => {});
} else {
  hypervisorContract("qemu", {
    timeoutMs: 300_000,
    setup: async () => {
      const dir = mkdtempSync(join(tmpdir(), "pith-contract-"));
      const service = await bootable(await appImage("examples/static-c"));
      const job = await bootable(await appImage("examples/batch"));
      const spec = (boot: typeof service) => (id: string): MachineSpec => ({ id, ...boot, stateDir: join(dir, id) });
      const hypervisor = new QemuHypervisor({ owner: "contract" });
      return {
        hypervisor,
        service: spec(service),
        job: spec(job),
        cleanup: async () => {
          for (const m of await new QemuHypervisor({ owner: "contract" }).recover()) await m.stop(1000);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
    restarted: () => new QemuHypervisor({ owner: "contract" }),
  });
}
