import type { ImageRecord } from "../../image/image.ts";
import { hypervisorContract } from "../hypervisor-contract.ts";
import type { MachineSpec } from "../hypervisor.ts";
import { FakeHypervisor } from "./fake-hypervisor.ts";


const image = { name: "fake", capabilities: { listen: [{ port: 8080, protocol: "http" }], egress: [], volumes: [], memoryMiB: 64, vcpus: 1 } } as unknown as ImageRecord;
const spec = (id: string): MachineSpec => ({ id, image, kernel: "/dev/null", initrd: "/dev/null", stateDir: "/tmp" });

hypervisorContract("fake", {
  setup: async () => {
    const hypervisor = new FakeHypervisor({ bootMs: 5 });
    return {
      hypervisor,
      service: spec,
      job: (id) => {
        const s = spec(id);
        // The fake has no app to run: end the job as soon as it is up.
        setTimeout(() => hypervisor.crash(id, 3), 20);
        return s;
      },
    };
  },
  restarted: (first) => first,
});
