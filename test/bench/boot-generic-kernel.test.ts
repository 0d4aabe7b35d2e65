/**
 * bench/boot's generic contender: unpacking Debian's kernel (LZ4 legacy frames, the bzImage's
 * payload) and the conventional init it boots. Unit tests: no QEMU.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { bzImageKernel } from "../../bench/boot/bzimage.ts";
import { initScript, neededDrivers } from "../../bench/boot/generic-initramfs.ts";
import { EXEC_MARK, INIT_MARK, parseMark, phasesFromMarks } from "../../bench/boot/init-marks.ts";
import { inCgroup } from "../../bench/boot/contender-cgroup.ts";
import { genericQemuArgv } from "../../bench/boot/generic-vm.ts";
import { qemuArgv } from "../../src/hypervisor/qemu/qemu-argv.ts";
import { QBOOT_FIRMWARE } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { roundOrder } from "../../bench/boot/round-order.ts";
import { decodeLz4Block, decodeLz4Legacy, LZ4_LEGACY_MAGIC } from "../../bench/boot/lz4-legacy.ts";
import type { ImageRecord } from "../../src/image/image.ts";

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const frame = (...blocks: Buffer[]): Buffer => Buffer.concat([u32(LZ4_LEGACY_MAGIC), ...blocks.flatMap((b) => [u32(b.length), b])]);

test("an LZ4 block: literals, a back-reference, an overlapping match (a repeated pattern) and long lengths", () => {
  // "abc" then a match of 9 at offset 3 (overlapping: abcabcabc), then 20 literals 'x' (15 + extra byte 5).
  const block = Buffer.concat([Buffer.from([0x35]), Buffer.from("abc"), Buffer.from([3, 0]), Buffer.from([0xf0, 5]), Buffer.from("x".repeat(20))]);
  assert.equal(decodeLz4Block(block, 1024).toString(), `abc${"abc".repeat(3)}${"x".repeat(20)}`);
});

test("damaged LZ4 input gives an error, never a read before the output or past the end", () => {
  assert.throws(() => decodeLz4Block(Buffer.from([0x10, 0x61, 9, 0]), 64), /offset 9 points before the output/);
  assert.throws(() => decodeLz4Block(Buffer.from([0x50, 0x61]), 64), /literals run past the end/);
  assert.throws(() => decodeLz4Block(Buffer.from([0x1f, 0x61, 1, 0, 255]), 64), /length runs past the end/);
  assert.throws(() => decodeLz4Block(Buffer.from([0x1f, 0x61, 1, 0, 200]), 16), /output over 16 bytes/);
  assert.throws(() => decodeLz4Legacy(Buffer.from("not lz4")), /no 0x184C2102 magic/);
  assert.throws(() => decodeLz4Legacy(u32(LZ4_LEGACY_MAGIC)), /holds no block/);
  // Blocks of 20 bytes each (a literal and a 19-byte repeat) against a 30-byte limit: refused at the second.
  const twenty = Buffer.from([0x1f, 0x61, 1, 0, 0]);
  assert.equal(decodeLz4Legacy(frame(twenty), 30).data.toString(), "a".repeat(20));
  assert.throws(() => decodeLz4Legacy(frame(twenty, twenty), 30), /output over 10 bytes/);
});

test("a legacy frame: blocks in order, a trailer shorter than a block is handed back", () => {
  const one = Buffer.concat([Buffer.from([0x40]), Buffer.from("pith")]);
  const two = Buffer.concat([Buffer.from([0x20]), Buffer.from("ok")]);
  const { data, trailer } = decodeLz4Legacy(Buffer.concat([frame(one, two), u32(6)]));
  assert.equal(data.toString(), "pithok");
  assert.equal(Buffer.from(trailer).readUInt32LE(0), 6);
});

test("the lz4 program's legacy output decodes to the same bytes", (t) => {
  if (!["/usr/bin/lz4", "/bin/lz4"].some(existsSync)) return t.skip("no lz4 program (Debian's lz4) to compress with");
  // Compressible, with matches of every length and data over one 8 MiB block.
  const parts: string[] = [];
  for (let i = 0, length = 0; length < 9 << 20; i++) {
    parts.push(`line ${i % 977} ${"z".repeat(i % 300)}\n`);
    length += parts.at(-1)!.length;
  }
  const input = Buffer.from(parts.join(""));
  const compressed = execFileSync("lz4", ["-l", "-c", "-q"], { input, maxBuffer: 64 << 20 });
  assert.ok(decodeLz4Legacy(compressed).data.equals(input));
});

test("a bzImage: refused without its setup header; Debian's cloud kernel unpacks to an ELF with a PVH entry", (t) => {
  assert.throws(() => bzImageKernel(Buffer.alloc(4096)), /no HdrS setup header/);
  const root = join(homedir(), ".pith", "bench", "generic-kernel");
  const dir = existsSync(root) ? readdirSync(root).find((d) => existsSync(join(root, d, "root", "boot"))) : undefined;
  if (!dir) return t.skip("no Debian cloud kernel unpacked yet (npx tsx bench/boot/run.ts fetches one)");
  const boot = join(root, dir, "root", "boot");
  const vmlinuz = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"))!;
  const elf = bzImageKernel(readFileSync(join(boot, vmlinuz)));
  assert.equal(elf.subarray(0, 4).toString("latin1"), "\x7fELF");
  // XEN_ELFNOTE_PHYS32_ENTRY (18): what QEMU boots through.
  const dir2 = mkdtempSync(join(tmpdir(), "pith-bzimage-"));
  t.after(() => rmSync(dir2, { recursive: true, force: true }));
  writeFileSync(join(dir2, "vmlinux"), elf);
  const notes = execFileSync("readelf", ["-n", join(dir2, "vmlinux")], { maxBuffer: 16 << 20, encoding: "utf8" });
  assert.match(notes, /Xen\s+0x00000008\s+Unknown note type: \(0x00000012\)/);
});

const record = { env: { GREETING: "it's fine" }, argv: ["/runtime/node", "/pith/start.cjs", "--flag"] } as unknown as ImageRecord;

test("the generic init: marks its start and the app's, mounts the runtime disk read-only, runs node on the bundle without Pith's start script", () => {
  const script = initScript(record, ["/lib/modules/x/virtio_mmio.ko"], true);
  const lines = script.split("\n");
  const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
  assert.ok(at(/^mount -t proc/) < at(new RegExp(`echo "${INIT_MARK} \\$up"`)), "the init mark needs /proc");
  assert.ok(at(/insmod \/lib\/modules\/x\/virtio_mmio.ko/) < at(/mount -t ext2 -o ro \/dev\/vda \/runtime/));
  assert.ok(at(new RegExp(`echo "${EXEC_MARK} \\$up"`)) < at(/^env -i /));
  assert.match(script, /env -i 'GREETING=it'\\''s fine' '\/runtime\/node' '\/app\/main.cjs' '--flag' &/);
  assert.doesNotMatch(initScript(record, [], false), /\/dev\/vda/);
});

test("the generic VM's drivers: its machine's virtio transport, the NIC, the disk only when it has one", () => {
  assert.deepEqual(neededDrivers("microvm", true).map((d) => d.module), ["virtio_mmio", "virtio_net", "virtio_blk"]);
  assert.deepEqual(neededDrivers("q35", false).map((d) => d.module), ["virtio_pci", "virtio_net"]);
});

test("a contender joins its cgroup before QEMU starts: a shell writes its pid, then execs", () => {
  const { binary, args } = inCgroup(["/sys/fs/cgroup/cpu/pith/a", "/sys/fs/cgroup/memory/pith/a"], "/usr/bin/qemu", ["-m", "64M"]);
  assert.equal(binary, "/bin/sh");
  assert.deepEqual(args.slice(2), ["sh", "/usr/bin/qemu", "-m", "64M"]);
  assert.equal(args[1], 'echo $$ > /sys/fs/cgroup/cpu/pith/a/cgroup.procs && echo $$ > /sys/fs/cgroup/memory/pith/a/cgroup.procs && exec "$@"');
  assert.deepEqual(inCgroup([], "/usr/bin/qemu", ["-m"]), { binary: "/usr/bin/qemu", args: ["-m"] });
  assert.throws(() => inCgroup(["/tmp/x; rm -rf /"], "q", []), /unexpected characters/);
});

test("the generic VM's phases from init's marks, dated like Pith's; a guest's odd or contradictory marks give none", () => {
  assert.deepEqual(parseMark("bench-init 1.63"), { name: INIT_MARK, uptimeMs: 1630 });
  assert.equal(parseMark("bench-init 1.63 trailing"), undefined);
  assert.equal(parseMark("bench-exec 1e309"), undefined);
  assert.equal(parseMark("xbench-exec 2.0"), undefined);
  // Spawned at 1000; init's mark (uptime 1500) arrived at 3000, so the kernel started at 1500.
  const marks = new Map([[INIT_MARK, { at: 3000, uptimeMs: 1500 }], [EXEC_MARK, { at: 3300, uptimeMs: 1780 }]]);
  assert.deepEqual(phasesFromMarks(marks, 1000, 5000), { vmmMs: 500, kernelMs: 1500, initMs: 280, appMs: 1720, readyMs: 4000 });
  assert.equal(phasesFromMarks(new Map([[INIT_MARK, { at: 3000, uptimeMs: 1500 }]]), 1000, 5000), undefined);
  assert.equal(phasesFromMarks(new Map([[INIT_MARK, { at: 3000, uptimeMs: 1500 }], [EXEC_MARK, { at: 3300, uptimeMs: 1400 }]]), 1000, 5000), undefined);
  assert.equal(phasesFromMarks(marks, 1000, 3000), undefined, "the app cannot have started after it answered");
});

test("the fair contender runs on Pith's own machine: the same -M (but ACPI), accelerator, CPU, memory, firmware and virtio-mmio devices", () => {
  const pith = qemuArgv({
    machineId: "m", owner: "bench", accelerator: "tcg", memoryMiB: 320, vcpus: 1, firmware: QBOOT_FIRMWARE, kernel: "/k", initrd: "/i", disk: "/d",
    kernelArgs: [], consoleLog: "/c", controlSocket: "/s", qmpSocket: "/q", pidFile: "/p", network: { socketPath: "/n" },
  });
  const generic = genericQemuArgv({ machine: "microvm", kernel: "/gk", initrd: "/gi", disk: "/d", memoryMiB: 320, vcpus: 1, hostPort: 1, guestPort: 2, qemuLog: "/l" });
  const value = (argv: string[], flag: string): string | undefined => argv[argv.indexOf(flag) + 1];
  assert.equal(value(generic, "-M"), value(pith, "-M")!.replace("acpi=off", "acpi=on"));
  for (const flag of ["-accel", "-cpu", "-m", "-smp", "-bios"]) assert.equal(value(generic, flag), value(pith, flag), flag);
  assert.ok(generic.includes("virtio-net-device,netdev=n0") && generic.includes("virtio-blk-device,drive=runtime"));
  const pithLine = value(pith, "-append")!.split(" ");
  for (const arg of ["console=ttyS0", "quiet", "panic=-1", "tsc_early_khz=2000000", "no_timer_check"]) {
    assert.ok(pithLine.includes(arg) && value(generic, "-append")!.split(" ").includes(arg), arg);
  }
  // The conventional PC: its own firmware and the bzImage, PCI devices.
  const q35 = genericQemuArgv({ machine: "q35", kernel: "/bz", initrd: "/gi", memoryMiB: 320, vcpus: 1, hostPort: 1, guestPort: 2, qemuLog: "/l" });
  assert.equal(value(q35, "-M"), "q35");
  assert.ok(!q35.includes("-bios") && q35.includes("virtio-net-pci,netdev=n0") && !q35.some((a) => a.includes("virtio-blk")));
});

test("contenders take turns at each position of a round", () => {
  assert.deepEqual([0, 1, 2, 3].map((r) => roundOrder(["pith", "generic", "q35"], r).join(",")), ["pith,generic,q35", "generic,q35,pith", "q35,pith,generic", "pith,generic,q35"]);
  assert.deepEqual(roundOrder(["a", "b"], 1), ["b", "a"]);
  assert.deepEqual(roundOrder([], 5), []);
});
