/**
 * One conventional VM: Debian's generic kernel and a busybox initramfs on a generic PC machine
 * (q35, with its default firmware), under the same QEMU binary and accelerator as Pith.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { QEMU_BINARY } from "../../src/hypervisor/qemu/qemu-machine.ts";

export interface GenericVmSpec {
  kernel: string;
  initrd: string;
  memoryMiB: number;
  vcpus: number;
  hostPort: number;
  guestPort: number;
  serialLog: string;
  qemuLog: string;
}

/** The command line, in one place. */
export function genericQemuArgv(spec: GenericVmSpec): string[] {
  return [
    "-name", "pith-bench:generic",
    "-nodefaults", "-no-user-config", "-display", "none",
    "-M", "q35",
    // The same accelerator arguments Pith uses under TCG.
    "-accel", spec.vcpus > 1 ? "tcg,thread=multi" : "tcg", "-cpu", "max",
    "-m", `${spec.memoryMiB}M`,
    "-smp", String(spec.vcpus),
    "-no-reboot",
    "-kernel", spec.kernel,
    "-initrd", spec.initrd,
    "-append", "console=ttyS0 quiet panic=-1",
    "-serial", `file:${spec.serialLog}`,
    "-netdev", `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${spec.hostPort}-:${spec.guestPort}`,
    "-device", "virtio-net-pci,netdev=n0",
  ];
}

export interface GenericVm {
  readonly pid: number;
  readonly exited: Promise<string>;
  /** Kills the QEMU process group and waits for the process to end. */
  kill(): Promise<void>;
}

export function startGenericVm(spec: GenericVmSpec): GenericVm {
  const log = openSync(spec.qemuLog, "w");
  // Its own process group, so cleanup can kill exactly what it started.
  const child: ChildProcess = spawn(QEMU_BINARY, genericQemuArgv(spec), { stdio: ["ignore", log, log], detached: true });
  closeSync(log);
  const exited = new Promise<string>((resolve) => {
    child.once("exit", (code, signal) => resolve(signal ? `QEMU killed by ${signal}` : `QEMU exited with status ${code}`));
    child.once("error", (e) => resolve(`cannot start ${QEMU_BINARY}: ${e.message}`));
  });
  return {
    pid: child.pid ?? -1,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null && child.pid) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      await exited;
    },
  };
}
