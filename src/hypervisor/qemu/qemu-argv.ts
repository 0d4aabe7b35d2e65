/**
 * The QEMU command line for one Pith machine, built by a pure function so that every flag is
 * in one place, explained, and testable without starting QEMU.
 *
 * The shape is fixed by what boots reliably under both KVM and TCG (see ENGINEERING.md):
 * a microvm with legacy timers and serial, qboot as firmware, the uncompressed PVH vmlinux.
 */
import { ASSUMED_TSC_KHZ } from "./host-tsc.ts";

export type Accelerator = "kvm" | "tcg";

export interface QemuMachineSpec {
  machineId: string;
  /**
   * Who manages the machine (e.g. `run` for `pith run`, `agent.<node>` for a node agent). With
   * the id it names the process, `-name pith:<owner>/<machineId>`, so a restarted agent finds
   * its own machines and never touches anyone else's.
   */
  owner: string;
  accelerator: Accelerator;
  memoryMiB: number;
  vcpus: number;
  firmware: string;
  kernel: string;
  initrd: string;
  /** A read-only disk image, shared by every machine of the image (virtio-blk, /dev/vda). */
  disk?: string;
  /**
   * Writable volume files, in the image's declaration order: after the runtime disk, so the
   * guest names them vdb, vdc... (vda, vdb... without one), as the image's mount lines expect.
   */
  volumes?: string[];
  /**
   * Under TCG, the guest's TSC rate: the host's (host-tsc.ts), since TCG passes the host's TSC
   * ticks through unscaled. ASSUMED_TSC_KHZ when absent.
   */
  tscKhz?: number;
  /** Extra kernel parameters (Pith's own, e.g. the machine id). */
  kernelArgs: string[];
  consoleLog: string;
  controlSocket: string;
  qmpSocket: string;
  pidFile: string;
  /**
   * Present only when the image declared `listen` or `egress`: no network device otherwise. The
   * network itself is pith-net's (see net-helper.ts), listening on this socket before QEMU starts.
   */
  network?: { socketPath: string };
  /**
   * Restore instead of boot: the snapshot is read from this inherited descriptor, and the
   * machine stays paused until told to continue (after its new identity is queued for init).
   * Everything else must match the machine the snapshot was taken of, except host-side ports.
   */
  incomingFd?: number;
  /**
   * QEMU's seccomp filter: no obsolete system calls, no privilege changes, no resource-control
   * calls, no fork or exec. Off only where the jail's cost is measured (bench/jail).
   */
  sandbox?: boolean;
  /** The TCG translation cache in MiB; TCG_TRANSLATION_CACHE_MIB when absent. */
  tcgTranslationCacheMiB?: number;
  /**
   * A virtio-balloon device with free page reporting: a guest kernel with the driver (the
   * `balloon` fragment) reports the pages it freed, and QEMU hands them back to the host.
   */
  freePageReporting?: boolean;
}

/** The TCG translation cache, in MiB (part of a machine's stated VMM overhead). */
export const TCG_TRANSLATION_CACHE_MIB = 256;

/** The guest's fixed address on its user network (pith-net's); the host side is 10.0.2.2. */
export const GUEST_ADDRESS = "10.0.2.15";
export const GUEST_GATEWAY = "10.0.2.2";

/**
 * microvm: no PCI, no ACPI, virtio-mmio only. The legacy PIT/PIC/RTC and ISA serial are what the
 * guest's clock and console need to boot reliably under TCG. (bench/boot boots a generic kernel
 * on this same machine.)
 */
export const MICROVM_MACHINE = "microvm,x-option-roms=off,isa-serial=on,pit=on,pic=on,rtc=on,acpi=off";

export function qemuArgv(spec: QemuMachineSpec): string[] {
  const argv: string[] = [
    "-name", `pith:${spec.owner}/${spec.machineId}`,
    // Nothing we did not ask for: no default NIC, VGA, floppy, CD-ROM or config files.
    "-nodefaults", "-no-user-config", "-display", "none",
    "-M", MICROVM_MACHINE,
    ...acceleratorArgs(spec.accelerator, spec.vcpus, spec.tcgTranslationCacheMiB ?? TCG_TRANSLATION_CACHE_MIB),
    "-m", `${spec.memoryMiB}M`,
    "-smp", String(spec.vcpus),
    // The guest ends by rebooting (it has no ACPI to power off): make that an exit.
    "-no-reboot",
    "-bios", spec.firmware,
    "-kernel", spec.kernel,
    "-initrd", spec.initrd,
    "-append", kernelCommandLine(spec),
    // ttyS0: the console, straight to a file, so it survives whoever is watching the machine.
    // append=on: the host rotates the file by copy-and-truncate (console-log.ts); appending,
    // QEMU writes at the new end instead of leaving a hole the size of what was cut.
    "-chardev", `file,id=console,path=${optValue(spec.consoleLog)},append=on`,
    "-serial", "chardev:console",
    // ttyS1: the control channel to the guest's init (config in; ready and exit out). A boot
    // waits for the host to connect (wait=on) before the guest runs: what init writes while no
    // one is connected is dropped, and a host slowed past the kernel's boot lost init's first
    // line, so the machine ran on the image's env, without its own (and without its identity).
    // A restore does not wait: it is paused (-S) until the host, connected by then, lets it run.
    "-chardev", `socket,id=control,path=${optValue(spec.controlSocket)},server=on,wait=${spec.incomingFd === undefined ? "on" : "off"}`,
    "-device", "isa-serial,chardev=control,index=1",
    "-qmp", `unix:${optValue(spec.qmpSocket)},server=on,wait=off`,
    "-pidfile", spec.pidFile,
  ];
  // Read-only: QEMU takes a shared lock, so every machine of the image can use the same file.
  if (spec.disk) argv.push("-drive", `file=${optValue(spec.disk)},if=none,id=runtime,format=raw,readonly=on`, "-device", "virtio-blk-device,drive=runtime");
  // Writable, one machine at a time: QEMU's default image locking takes the file's write lock,
  // so even a second QEMU started past Pith's claims could not open it. QEMU writes through to
  // the host's page cache, so what the guest wrote survives QEMU's kill -9; the guest's flushes
  // become fdatasync on the host.
  (spec.volumes ?? []).forEach((path, i) => {
    argv.push("-drive", `file=${optValue(path)},if=none,id=volume${i},format=raw,discard=unmap`, "-device", `virtio-blk-device,drive=volume${i}`);
  });
  if (spec.network) argv.push(...networkArgs(spec.network));
  if (spec.freePageReporting) argv.push("-device", "virtio-balloon-device,free-page-reporting=on");
  if (spec.incomingFd !== undefined) argv.push("-S", "-incoming", `fd:${spec.incomingFd}`);
  if (spec.sandbox) argv.push("-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
  return argv;
}

/**
 * Without ERMS and FSRM the guest's memset, memcpy and clear_page move 8 bytes per iteration
 * instead of one: under TCG each iteration of a `rep stosb` is a trip through translated code, so
 * clearing the kernel's BSS and pages costs several times more. 3-5% of a static app's boot
 * (paired, bench/README.md, boot); on real hardware the flags would matter the other way, and KVM
 * gets the host's CPU.
 */
export const TCG_CPU = "max,-erms,-fsrm";

export function acceleratorArgs(accelerator: Accelerator, vcpus: number, translationCacheMiB: number): string[] {
  if (accelerator === "kvm") return ["-accel", "kvm", "-cpu", "host"];
  // `max` gives the guest RDRAND, which seeds its random pool at once instead of stalling
  // getrandom() in early userspace. Multi-threaded TCG spreads vCPUs over host cores. The
  // translation cache is capped (QEMU's default reserves up to 1 GiB), so a machine's host memory
  // has a bound its cgroup can state: guest RAM plus this plus QEMU itself.
  return ["-accel", `tcg,tb-size=${translationCacheMiB}${vcpus > 1 ? ",thread=multi" : ""}`, "-cpu", TCG_CPU];
}

export function kernelCommandLine(spec: Pick<QemuMachineSpec, "accelerator" | "kernelArgs" | "network" | "tscKhz">): string {
  const args = [
    "console=ttyS0",
    // Print only what matters: serial output is slow under emulation and the app owns the console.
    "quiet",
    // Reboot by triple fault (fastest, needs no firmware help); a panic reboots at once, ending the VM.
    "reboot=t",
    "panic=-1",
    // Unpack the initramfs into ramfs, not tmpfs: tmpfs would cap the root filesystem at half
    // of the machine's memory, and a Node runtime alone is 86 MB.
    "rootfstype=ramfs",
  ];
  args.push(...clockArgs(spec.accelerator, spec.tscKhz));
  // Pith's kernels take the APIC timer's rate (src/kernel/patches/0001) instead of calibrating it
  // against the PIT, a quarter of a TCG boot. A kernel without the patch hands the unknown
  // argument to init's environment, which init never passes on (the app's comes from the image).
  if (spec.accelerator === "tcg") args.push(`lapic_timer_hz=${QEMU_TCG_APIC_TIMER_HZ}`);
  // The kernel configures the address itself: init needs no network code and no tools.
  if (spec.network) args.push(`ip=${GUEST_ADDRESS}::${GUEST_GATEWAY}:255.255.255.0::eth0:off`);
  return [...args, ...spec.kernelArgs].join(" ");
}

/** QEMU's emulated local APIC counts its timer in nanoseconds of the virtual clock: 1 GHz before its divider. */
export const QEMU_TCG_APIC_TIMER_HZ = 1_000_000_000;

/**
 * What any kernel's clock needs on this machine (bench/boot gives them to a generic kernel too).
 * Under TCG the guest keeps time with the TSC, which is the host's TSC read by QEMU: steady, and
 * 1 ns fine. Without these it ends up on jiffies (4 or 10 ms steps, slow by every lost tick).
 */
export function clockArgs(accelerator: Accelerator, tscKhz = ASSUMED_TSC_KHZ): string[] {
  return [
    ...(accelerator === "tcg"
      ? [
          // Calibrating the TSC against the PIT hangs at random under emulation: tell the kernel
          // its rate, the host's, or every clock in the guest runs off by the ratio.
          `tsc_early_khz=${tscKhz}`,
          // The clocksource watchdog checks the TSC against the only other clock a microvm has,
          // jiffies, counted from PIT interrupts that QEMU drops when the vCPU thread waits for a
          // busy host CPU. Under load the TSC then looks wrong against it, is marked unstable, and
          // the guest falls back to jiffies for good. Here the reference is the unreliable one: no
          // watchdog. Only the watchdog: `tsc=reliable` would also skip the checks at CPU bring-up.
          "tsc=nowatchdog",
        ]
      : []),
    // The kernel's check that the timer interrupt reaches it through the IO-APIC waits a fixed
    // number of TSC ticks; an emulated guest on a busy host can miss that window and panics
    // ("IO-APIC + timer doesn't work!"). The timer is QEMU's and works: skip the check, as cloud
    // images do for virtual machines.
    "no_timer_check",
  ];
}

function networkArgs(network: NonNullable<QemuMachineSpec["network"]>): string[] {
  // The NIC's frames go to pith-net over a unix socket; QEMU itself opens no host socket and
  // runs no program for the network. server=off: pith-net listens and is there before QEMU starts.
  return [
    "-netdev", `stream,id=net0,server=off,addr.type=unix,addr.path=${optValue(network.socketPath)}`,
    "-device", "virtio-net-device,netdev=net0",
  ];
}

/** QEMU splits option lists at commas; a comma inside a value (a path) is written twice. */
export const optValue = (value: string): string => value.replaceAll(",", ",,");
