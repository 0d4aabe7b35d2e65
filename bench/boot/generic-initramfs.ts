/**
 * The conventional contender's initramfs: busybox, a shell-script /init, the kernel modules the
 * generic kernel needs for its NIC and disk, and the very same app files as the Pith image (its
 * rootfs.cpio unpacked, minus Pith's init). Node itself stays on the image's runtime disk, which
 * the generic VM gets too and its init mounts, as a cloud VM mounts its root disk. Written
 * uncompressed with the system's `cpio -o -H newc`, like Pith's, so the comparison is about
 * kernel and init, not compression.
 */
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { readElfInfo } from "../../src/image/elf/elf-file.ts";
import { GUEST_APP_MODULE, GUEST_APP_SCRIPT, GUEST_START_SCRIPT, RUNTIME_MOUNT } from "../../src/image/guest-paths.ts";
import type { ImageRecord } from "../../src/image/image.ts";
import { execFile } from "../../src/shared/exec.ts";
import type { GenericKernel } from "./generic-kernel.ts";
import type { GenericMachine } from "./generic-vm.ts";
import { EXEC_MARK, INIT_MARK, markCommand } from "./init-marks.ts";

export const BUSYBOX = "/bin/busybox";
/** The applets /init uses, as symlinks in /bin, the way a busybox initramfs is usually laid out. */
const APPLETS = ["sh", "mount", "insmod", "ip", "env", "poweroff", "echo", "cat"];

interface Driver {
  symbol: string;
  module: string;
}
/** The virtio transport each machine has: memory-mapped on microvm, PCI on q35. */
const TRANSPORT: Record<GenericMachine, Driver> = {
  microvm: { symbol: "CONFIG_VIRTIO_MMIO", module: "virtio_mmio" },
  q35: { symbol: "CONFIG_VIRTIO_PCI", module: "virtio_pci" },
};
const NET_DRIVER: Driver = { symbol: "CONFIG_VIRTIO_NET", module: "virtio_net" };
const DISK_DRIVER: Driver = { symbol: "CONFIG_VIRTIO_BLK", module: "virtio_blk" };

/** What the generic VM needs built in or loaded: the transport, the NIC, and the disk if it has one. */
export function neededDrivers(machine: GenericMachine, disk: boolean): Driver[] {
  return [TRANSPORT[machine], NET_DRIVER, ...(disk ? [DISK_DRIVER] : [])];
}


export const GUEST_ADDRESS = "10.0.2.15/24";
export const GUEST_GATEWAY = "10.0.2.2";

export interface GenericInitramfs {
  path: string;
  bytes: number;
  /** Module paths relative to lib/modules/<release>, in load order. */
  modules: string[];
}

/** Installs busybox-static from Debian if /bin/busybox is missing; refuses a dynamic busybox. */
export async function ensureBusybox(log: (line: string) => void = () => {}): Promise<string> {
  if (!existsSync(BUSYBOX)) {
    log("busybox: /bin/busybox missing, installing Debian's busybox-static");
    await execFile("apt-get", ["install", "-y", "busybox-static"], { code: "BUSYBOX_INSTALL", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  }
  if (!(await readElfInfo(BUSYBOX)).isStatic) {
    throw new Error(`${BUSYBOX} is dynamically linked; the initramfs needs a static one: apt-get install busybox-static`);
  }
  return BUSYBOX;
}

/**
 * Modules (relative paths, load order: dependencies first) needed for `drivers` that the
 * kernel's config builds as modules (=m); built-in (=y) drivers need nothing.
 */
export async function modulesToLoad(kernel: GenericKernel, drivers: Driver[]): Promise<string[]> {
  const dep = parseModulesDep(await readFile(join(kernel.modulesDir, "modules.dep"), "utf8"));
  const byName = new Map<string, string>();
  for (const path of dep.keys()) byName.set(moduleName(path), path);

  const order: string[] = [];
  const visit = (path: string, chain: string[]): void => {
    if (order.includes(path)) return;
    if (chain.includes(path)) throw new Error(`module dependency cycle: ${[...chain, path].join(" -> ")}`);
    for (const d of dep.get(path) ?? []) visit(d, [...chain, path]);
    order.push(path);
  };
  for (const { symbol, module } of drivers) {
    const value = kernel.config.get(symbol);
    if (value === "y") continue;
    if (value !== "m") throw new Error(`${kernel.release} has neither ${symbol}=y nor =m (${value ?? "unset"}): it cannot drive this VM's devices`);
    const path = byName.get(module);
    if (!path) throw new Error(`${symbol}=m but ${module}.ko is not in ${kernel.modulesDir}/modules.dep`);
    visit(path, []);
  }
  return order;
}

/** modules.dep: "kernel/x/a.ko: kernel/y/b.ko kernel/z/c.ko" per line. */
function parseModulesDep(text: string): Map<string, string[]> {
  const dep = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    dep.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim().split(/\s+/).filter(Boolean));
  }
  return dep;
}

/** "kernel/drivers/net/virtio_net.ko.xz" -> "virtio_net" (modprobe treats - and _ alike). */
const moduleName = (path: string): string => path.replace(/^.*\//, "").replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
/** Where a module goes in the initramfs: decompressed, so plain insmod loads it. */
const plainKo = (path: string): string => path.replace(/\.ko\.(xz|zst|gz)$/, ".ko");

/**
 * Builds the generic initramfs at `out` from the Pith image's own root filesystem (`pithInitrd`,
 * the uncompressed rootfs.cpio from bootFiles()), in the scratch directory `work`.
 */
export async function buildGenericInitramfs(options: {
  record: ImageRecord;
  pithInitrd: string;
  /** Whether the VM gets the Pith image's read-only runtime disk (init mounts it where Pith's init does). */
  disk: boolean;
  machine: GenericMachine;
  kernel: GenericKernel;
  busybox: string;
  work: string;
  out: string;
}): Promise<GenericInitramfs> {
  const { record, pithInitrd, disk, machine, kernel, busybox, work, out } = options;
  const root = join(work, "root");
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });

  // The same app, runtime and libraries, byte for byte: unpack Pith's archive, drop its init.
  await execFile("sh", ["-c", 'cpio -idm --quiet --no-absolute-filenames < "$1"', "sh", pithInitrd], { cwd: root, code: "GENERIC_INITRAMFS" });
  await rm(join(root, "init"), { force: true });
  await rm(join(root, "pith", "mounts"), { force: true });
  if (disk) await mkdir(join(root, RUNTIME_MOUNT.slice(1)), { recursive: true });

  await mkdir(join(root, "bin"), { recursive: true });
  await copyFile(busybox, join(root, "bin", "busybox"));
  await chmod(join(root, "bin", "busybox"), 0o755);
  for (const applet of APPLETS) await symlink("busybox", join(root, "bin", applet));
  for (const dir of ["dev", "proc", "sys", "tmp"]) await mkdir(join(root, dir), { recursive: true });

  const modules = await modulesToLoad(kernel, neededDrivers(machine, disk));
  const guestModulesDir = join("lib", "modules", kernel.release);
  for (const module of modules) {
    const to = join(root, guestModulesDir, plainKo(module));
    await mkdir(dirname(to), { recursive: true });
    await decompressModule(join(kernel.modulesDir, module), to);
  }

  await writeFile(join(root, "init"), initScript(record, modules.map((m) => `/${guestModulesDir}/${plainKo(m)}`), disk), { mode: 0o755 });

  // find | cpio, sorted so parents come first and the archive does not depend on readdir order.
  await execFile(
    "bash",
    ["-c", 'set -o pipefail; find . -mindepth 1 -printf "%P\\n" | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > "$1"', "bash", out],
    { cwd: root, code: "GENERIC_INITRAMFS" },
  );
  await rm(root, { recursive: true, force: true });
  return { path: out, bytes: (await stat(out)).size, modules };
}

async function decompressModule(from: string, to: string): Promise<void> {
  const tool = from.endsWith(".xz") ? ["xz", "-dc"] : from.endsWith(".zst") ? ["zstd", "-dcq"] : from.endsWith(".gz") ? ["gzip", "-dc"] : undefined;
  if (!tool) return copyFile(from, to);
  await execFile("sh", ["-c", `${tool.join(" ")} "$1" > "$2"`, "sh", from, to], { code: "GENERIC_INITRAMFS" });
}

/**
 * What a conventional VM runs for the app: node on the same bundle, without what Pith adds to
 * node's start (its start script and the V8 code cache it loads, and Pith's start flags).
 */
export function conventionalArgv(argv: readonly string[]): string[] {
  for (const [entry, bundle] of [[GUEST_START_SCRIPT, GUEST_APP_SCRIPT], [GUEST_APP_MODULE, GUEST_APP_MODULE]] as const) {
    const at = argv.indexOf(entry);
    if (at >= 0) return [argv[0]!, bundle, ...argv.slice(at + 1)];
  }
  return [...argv];
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * A conventional initramfs /init: mount the kernel's filesystems, load the drivers' modules,
 * mount the runtime disk read-only, configure the network with `ip`, run the app with the
 * image's argv and env (in /app, as Pith's init does), and power off when it ends. It marks on
 * the console when it starts and when it runs the app (init-marks.ts).
 */
export function initScript(record: ImageRecord, modulePaths: string[], disk: boolean): string {
  const env = Object.keys(record.env)
    .sort()
    .map((k) => shellQuote(`${k}=${record.env[k]}`));
  return [
    "#!/bin/sh",
    "# Generated by bench/boot: a conventional busybox initramfs init.",
    "export PATH=/bin",
    "mount -t proc proc /proc",
    markCommand(INIT_MARK),
    "mount -t devtmpfs devtmpfs /dev",
    "mount -t sysfs sysfs /sys",
    "mount -t tmpfs tmpfs /tmp",
    ...modulePaths.map((m) => `insmod ${m} || echo "init: insmod ${m} failed"`),
    ...(disk
      ? [
          // The disk's node appears as its driver probes; wait for it a bounded number of times.
          "i=0; while [ ! -b /dev/vda ] && [ $i -lt 100000 ]; do i=$((i+1)); done",
          `mount -t ext2 -o ro /dev/vda ${RUNTIME_MOUNT} || echo "init: mount /dev/vda failed"`,
        ]
      : []),
    "ip link set lo up",
    "ip link set eth0 up",
    `ip addr add ${GUEST_ADDRESS} dev eth0`,
    `ip route add default via ${GUEST_GATEWAY}`,
    "cd /app",
    markCommand(EXEC_MARK),
    `env -i ${[...env, ...conventionalArgv(record.argv).map(shellQuote)].join(" ")} &`,
    "wait $!",
    'echo "init: app exited with $?"',
    "poweroff -f",
    "",
  ].join("\n");
}
