import type { ImageRecord } from "../../image/image.ts";
import type { MachineSpec } from "../hypervisor.ts";

/**
 * An agent's boot source for FakeHypervisor: an image record with the given name and listen
 * ports, and files that the fake never opens.
 */
export function fakeBootSource(name: string, listen: number[] = []): (digest: string) => Promise<Pick<MachineSpec, "image" | "kernel" | "initrd">> {
  return async (digest) => {
    const image: ImageRecord = {
      schemaVersion: 1,
      digest,
      name,
      runtime: "native",
      capabilities: { listen: listen.map((port) => ({ port, protocol: "tcp" })), egress: [], volumes: [], memoryMiB: 16, vcpus: 1 },
      readiness: { kind: "none" },
      readyTimeoutMs: 10_000,
      argv: ["/app"],
      env: {},
      kernel: { configHash: "0", sourceVersion: "0", fragments: [], options: 0, sha256: "0", bytes: 0 },
      rootfs: { sha256: "0", bytes: 0, files: [] },
    };
    return { image, kernel: "/dev/null", initrd: "/dev/null" };
  };
}
