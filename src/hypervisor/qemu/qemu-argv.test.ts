import assert from "node:assert/strict";
import { test } from "node:test";
import { kernelCommandLine, qemuArgv, type QemuMachineSpec } from "./qemu-argv.ts";

const spec: QemuMachineSpec = {
  machineId: "web-1",
  owner: "agent.node-a",
  accelerator: "tcg",
  memoryMiB: 128,
  vcpus: 1,
  firmware: "/fw/qboot.rom",
  kernel: "/img/vmlinux",
  initrd: "/img/rootfs.cpio",
  kernelArgs: [],
  consoleLog: "/m/console.log",
  controlSocket: "/m/control.sock",
  qmpSocket: "/m/qmp.sock",
  pidFile: "/m/qemu.pid",
};

const valueOf = (argv: string[], flag: string): string[] => argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));

test("a machine without listen or egress gets no network device at all", () => {
  const argv = qemuArgv(spec);
  assert.ok(!argv.includes("-netdev"));
  assert.ok(!argv.some((a) => a.includes("virtio-net")));
  assert.doesNotMatch(kernelCommandLine(spec), /ip=/);
  assert.ok(argv.includes("-nodefaults"), "no default devices");
});

test("the NIC is connected to pith-net's socket, and QEMU itself opens no host socket and runs nothing", () => {
  const argv = qemuArgv({ ...spec, network: { socketPath: "/m,x/net.sock" } });
  assert.deepEqual(valueOf(argv, "-netdev"), ["stream,id=net0,server=off,addr.type=unix,addr.path=/m,,x/net.sock"]);
  assert.deepEqual(valueOf(argv, "-device").filter((d) => d.startsWith("virtio-net")), ["virtio-net-device,netdev=net0"]);
  assert.ok(!argv.some((a) => /hostfwd|guestfwd|cmd:|user,/.test(a)), "no user network, forward or relay in QEMU");
  assert.match(valueOf(argv, "-append")[0]!, / ip=10\.0\.2\.15::10\.0\.2\.2:255\.255\.255\.0::eth0:off/);
});

test("TCG gets a TSC rate and RDRAND; KVM gets the host CPU and no TSC override", () => {
  const tcg = qemuArgv(spec);
  assert.deepEqual(valueOf(tcg, "-accel"), ["tcg,tb-size=256"]);
  assert.deepEqual(valueOf(tcg, "-cpu"), ["max,-erms,-fsrm"], "RDRAND, and memset and memcpy that move words, not bytes");
  assert.match(valueOf(tcg, "-append")[0]!, /tsc_early_khz=2000000 /, "the assumed rate when the host's is not known");
  assert.match(valueOf(qemuArgv({ ...spec, tscKhz: 2_100_000 }), "-append")[0]!, /tsc_early_khz=2100000 /, "the host's rate when it is");
  assert.match(valueOf(tcg, "-append")[0]!, /\btsc=nowatchdog\b/, "no watchdog judging the TSC by dropped PIT ticks");
  assert.doesNotMatch(valueOf(tcg, "-append")[0]!, /tsc=reliable/, "the TSC checks at CPU bring-up stay");
  assert.match(valueOf(tcg, "-append")[0]!, /\bno_timer_check\b/, "no timer check to fail on a busy host");
  assert.match(valueOf(tcg, "-append")[0]!, /\blapic_timer_hz=1000000000\b/, "the APIC timer's rate under TCG, not a calibration");
  const kvm = qemuArgv({ ...spec, accelerator: "kvm" });
  assert.deepEqual(valueOf(kvm, "-accel"), ["kvm"]);
  assert.deepEqual(valueOf(kvm, "-cpu"), ["host"]);
  assert.doesNotMatch(valueOf(kvm, "-append")[0]!, /tsc_early_khz|tsc=|lapic_timer_hz/, "KVM's guest has kvm-clock and a TSC-deadline timer");
  assert.deepEqual(valueOf(qemuArgv({ ...spec, vcpus: 2 }), "-accel"), ["tcg,tb-size=256,thread=multi"]);
});

test("density settings: a chosen translation cache size, and a free-page-reporting balloon only when asked", () => {
  assert.deepEqual(valueOf(qemuArgv({ ...spec, tcgTranslationCacheMiB: 32 }), "-accel"), ["tcg,tb-size=32"]);
  assert.ok(!valueOf(qemuArgv(spec), "-device").some((d) => d.startsWith("virtio-balloon")), "no balloon by default");
  assert.ok(valueOf(qemuArgv({ ...spec, freePageReporting: true }), "-device").includes("virtio-balloon-device,free-page-reporting=on"));
});

test("the machine is findable by name, boots the PVH kernel with qboot, and exits instead of rebooting", () => {
  const argv = qemuArgv(spec);
  assert.deepEqual(valueOf(argv, "-name"), ["pith:agent.node-a/web-1"]);
  assert.deepEqual(valueOf(argv, "-bios"), ["/fw/qboot.rom"]);
  assert.deepEqual(valueOf(argv, "-kernel"), ["/img/vmlinux"]);
  assert.ok(argv.includes("-no-reboot"));
  assert.match(valueOf(argv, "-M")[0]!, /^microvm,.*acpi=off/);
  assert.deepEqual(valueOf(argv, "-m"), ["128M"]);
  assert.ok(valueOf(argv, "-device").includes("isa-serial,chardev=control,index=1"), "the control channel is the second serial port");
});

test("a comma in a path is escaped, and discovery reads it back", async () => {
  const { parseQemuArgv } = await import("./qemu-discovery.ts");
  const argv = qemuArgv({ ...spec, consoleLog: "/m,x/console.log", controlSocket: "/m,x/control.sock", qmpSocket: "/m,x/qmp.sock" });
  assert.ok(valueOf(argv, "-chardev").includes("file,id=console,path=/m,,x/console.log,append=on"));
  const found = parseQemuArgv(42, argv)!;
  assert.equal(found.consoleLog, "/m,x/console.log");
  assert.equal(found.controlSocket, "/m,x/control.sock");
  assert.equal(found.qmpSocket, "/m,x/qmp.sock");
  assert.equal(found.owner, "agent.node-a");
  assert.equal(found.machineId, "web-1");
});

test("discovery reads the accelerator and whether there is a network from QEMU's argv", async () => {
  const { parseQemuArgv } = await import("./qemu-discovery.ts");
  const found = parseQemuArgv(7, qemuArgv({ ...spec, accelerator: "kvm", network: { socketPath: "/m/net.sock" } }))!;
  assert.equal(found.accelerator, "kvm");
  assert.equal(found.hasNetwork, true);
  assert.equal(parseQemuArgv(7, qemuArgv(spec))!.hasNetwork, false);
  assert.equal(parseQemuArgv(7, ["-name", "something-else"]), undefined);
});

test("a restore is the same machine, paused, reading its snapshot from an inherited descriptor", () => {
  const boot = qemuArgv(spec);
  const restore = qemuArgv({ ...spec, incomingFd: 3 });
  // A boot's QEMU waits for the host on the control channel before the guest runs (init's first
  // line would be lost otherwise); a restore's does not: it is paused until the host lets it run.
  const control = (argv: string[]) => valueOf(argv, "-chardev").find((c) => c.startsWith("socket,id=control,"));
  assert.match(control(boot)!, /,server=on,wait=on$/);
  assert.match(control(restore)!, /,server=on,wait=off$/);
  const sameButWait = (argv: string[]) => argv.map((a) => a.replace(/,wait=(on|off)$/, ""));
  assert.deepEqual(sameButWait(restore.slice(0, boot.length)), sameButWait(boot), "every device and option as at boot");
  assert.deepEqual(restore.slice(boot.length), ["-S", "-incoming", "fd:3"]);
});

test("volumes are writable virtio-blk disks after the read-only runtime disk, in declaration order; none without volumes", () => {
  assert.ok(!qemuArgv(spec).some((a) => a.startsWith("virtio-blk")), "no block device at all");
  const argv = qemuArgv({ ...spec, disk: "/img/runtime.ext2", volumes: ["/v/data.ext4", "/v/a,b.ext4"] });
  const drives = valueOf(argv, "-drive");
  assert.equal(drives.length, 3);
  assert.match(drives[0]!, /^file=\/img\/runtime\.ext2,.*readonly=on/);
  assert.match(drives[1]!, /^file=\/v\/data\.ext4,if=none,id=volume0,format=raw/);
  assert.match(drives[2]!, /^file=\/v\/a,,b\.ext4,if=none,id=volume1,/, "a comma in a path is escaped");
  for (const drive of drives.slice(1)) assert.doesNotMatch(drive, /readonly|locking=off|share-rw/, "writable, and QEMU keeps its write lock");
  assert.deepEqual(valueOf(argv, "-device").filter((d) => d.startsWith("virtio-blk")), ["virtio-blk-device,drive=runtime", "virtio-blk-device,drive=volume0", "virtio-blk-device,drive=volume1"]);
});
