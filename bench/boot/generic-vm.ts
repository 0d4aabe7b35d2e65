/**
 * One conventional VM: Debian's generic kernel and a busybox initramfs, under the same QEMU
 * binary and accelerator as Pith, on one of two machines:
 *
 * - `microvm`: the machine Pith's own are (src/hypervisor/qemu/qemu-argv.ts): the same -M options,
 *   accelerator and translation cache, qboot, the kernel's ELF booted through its PVH entry, the
 *   same virtio-mmio devices (NIC, and the image's read-only runtime disk). One difference: ACPI
 *   on, because the cloud kernel finds virtio-mmio devices only through ACPI (it lacks
 *   VIRTIO_MMIO_CMDLINE_DEVICES). This is the fair contender: only the kernel and init differ.
 * - `q35`: a conventional PC, as clouds present one: SeaBIOS, the bzImage (decompressed at boot),
 *   ACPI, PCI, virtio-net-pci and virtio-blk-pci.
 *
 * The console goes to a pipe, so the bench stamps each line on arrival (the init's phase marks).
 * What the guest prints is kept bounded: its marks, and its last lines for error reports.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { acceleratorArgs, clockArgs, MICROVM_MACHINE, optValue, TCG_TRANSLATION_CACHE_MIB } from "../../src/hypervisor/qemu/qemu-argv.ts";
import { QBOOT_FIRMWARE } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { QEMU_BINARY } from "../../src/hypervisor/qemu/qemu-machine.ts";
import { inCgroup } from "./contender-cgroup.ts";
import { parseMark, type StampedMark } from "./init-marks.ts";

export type GenericMachine = "microvm" | "q35";
export const GENERIC_MACHINES: readonly GenericMachine[] = ["microvm", "q35"];

export interface GenericVmSpec {
  machine: GenericMachine;
  /** The bzImage (q35) or the ELF vmlinux (microvm). */
  kernel: string;
  initrd: string;
  /** The Pith image's read-only runtime disk, attached the same way. */
  disk?: string;
  memoryMiB: number;
  vcpus: number;
  hostPort: number;
  guestPort: number;
  qemuLog: string;
  /** The host's TSC rate (host-tsc.ts), as Pith's machines are told it. */
  tscKhz?: number;
  /** The cgroup QEMU runs in (contender-cgroup.ts): none where Pith's machines get none. */
  cgroupDirs?: string[];
}

/**
 * The kernel command line: what a cloud image's boot loader passes (the serial console; `panic`
 * so a failed boot ends the VM), plus what Pith's own line has that any kernel profits from here:
 * `quiet` (every console line costs emulated port writes) and the clock arguments a kernel needs
 * under TCG, with the same TSC rate Pith's machines get (on KVM a cloud VM gets its TSC rate from
 * the hypervisor).
 */
export const genericKernelArgs = (tscKhz?: number): string[] => ["console=ttyS0", "quiet", "panic=-1", ...clockArgs("tcg", tscKhz)];

/** The command line, in one place. */
export function genericQemuArgv(spec: GenericVmSpec): string[] {
  const microvm = spec.machine === "microvm";
  const bus = microvm ? "device" : "pci";
  const argv = [
    "-name", `pith-bench:generic-${spec.machine}`,
    "-nodefaults", "-no-user-config", "-display", "none",
    "-M", microvm ? withAcpi(MICROVM_MACHINE) : "q35",
    ...acceleratorArgs("tcg", spec.vcpus, TCG_TRANSLATION_CACHE_MIB),
    "-m", `${spec.memoryMiB}M`,
    "-smp", String(spec.vcpus),
    "-no-reboot",
    ...(microvm ? ["-bios", QBOOT_FIRMWARE] : []),
    "-kernel", spec.kernel,
    "-initrd", spec.initrd,
    "-append", genericKernelArgs(spec.tscKhz).join(" "),
    "-serial", "stdio",
    "-netdev", `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${spec.hostPort}-:${spec.guestPort}`,
    "-device", `virtio-net-${bus},netdev=n0`,
  ];
  if (spec.disk) argv.push("-drive", `file=${optValue(spec.disk)},if=none,id=runtime,format=raw,readonly=on`, "-device", `virtio-blk-${bus},drive=runtime`);
  return argv;
}

function withAcpi(machine: string): string {
  if (!machine.includes("acpi=off")) throw new Error(`expected Pith's microvm options to turn ACPI off: ${machine}`);
  return machine.replace("acpi=off", "acpi=on");
}

/** Console lines kept for error reports, and the longest line kept whole. */
const CONSOLE_TAIL_LINES = 40;
const CONSOLE_LINE_MAX = 1024;

export interface GenericVm {
  readonly pid: number;
  readonly exited: Promise<string>;
  /** The init's phase marks (the first of each), stamped on arrival. */
  readonly marks: ReadonlyMap<string, StampedMark>;
  /** The console's last lines. */
  readonly tail: readonly string[];
  /** Kills the QEMU process group and waits for the process to end. */
  kill(): Promise<void>;
}

export function startGenericVm(spec: GenericVmSpec): GenericVm {
  const log = openSync(spec.qemuLog, "w");
  // Its own process group, so cleanup can kill exactly what it started.
  const command = inCgroup(spec.cgroupDirs ?? [], QEMU_BINARY, genericQemuArgv(spec));
  const child: ChildProcess = spawn(command.binary, command.args, { stdio: ["ignore", "pipe", log], detached: true });
  closeSync(log);
  const marks = new Map<string, StampedMark>();
  const tail: string[] = [];
  let partial = "";
  child.stdout?.setEncoding("latin1");
  child.stdout?.on("data", (chunk: string) => {
    const at = performance.now();
    const parts = (partial + chunk).split("\n");
    // A line that never ends is cut, not kept growing.
    partial = (parts.pop() ?? "").slice(-CONSOLE_LINE_MAX);
    for (const raw of parts) {
      const text = raw.replace(/\r$/, "").slice(0, CONSOLE_LINE_MAX);
      const mark = parseMark(text);
      if (mark && !marks.has(mark.name)) marks.set(mark.name, { at, uptimeMs: mark.uptimeMs });
      tail.push(text);
      if (tail.length > CONSOLE_TAIL_LINES) tail.shift();
    }
  });
  const exited = new Promise<string>((resolve) => {
    child.once("exit", (code, signal) => resolve(signal ? `QEMU killed by ${signal}` : `QEMU exited with status ${code}`));
    child.once("error", (e) => resolve(`cannot start ${QEMU_BINARY}: ${e.message}`));
  });
  return {
    pid: child.pid ?? -1,
    exited,
    marks,
    tail,
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
