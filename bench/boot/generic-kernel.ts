/**
 * Debian's generic cloud kernel, the conventional contender's kernel: taken only from Debian's
 * packages (`apt-get download`, never installed on the host), unpacked with `dpkg-deb -x` into
 * <PITH_HOME>/bench/generic-kernel/<package file>/, once. The package ships no modules.dep (the
 * host's depmod writes it at install time), so `depmod -b` writes it here, the same way. The
 * kernel inside the bzImage is unpacked too (`vmlinux`, ELF with a PVH entry), so the generic
 * kernel can be booted exactly as Pith boots its own.
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { execFile } from "../../src/shared/exec.ts";
import { bzImageKernel } from "./bzimage.ts";
import { withFileLock } from "../../src/shared/file-lock.ts";
import { pithHome } from "../../src/shared/paths.ts";

/** The metapackage that always depends on the current cloud kernel package. */
export const CLOUD_KERNEL_METAPACKAGE = "linux-image-cloud-amd64";

export interface GenericKernel {
  /** e.g. linux-image-6.1.0-57-cloud-amd64 */
  packageName: string;
  /** e.g. linux-image-6.1.0-57-cloud-amd64_6.1.192-3_amd64.deb */
  packageFile: string;
  packageVersion: string;
  /** The kernel release (uname -r), e.g. 6.1.0-57-cloud-amd64. */
  release: string;
  /** The bzImage, as a PC's boot loader loads it. */
  vmlinuz: string;
  /** The ELF kernel inside it, booted through its PVH entry (as Pith's own kernel is). */
  vmlinux: string;
  /** lib/modules/<release> in the unpacked package, with a modules.dep. */
  modulesDir: string;
  /** CONFIG_ symbols and their values (y, m, or a string/number) from boot/config-<release>. */
  config: Map<string, string>;
}

const cacheRoot = (): string => join(pithHome(), "bench", "generic-kernel");

/**
 * Finds, downloads (once) and unpacks a Debian cloud kernel package: `packageName` (e.g.
 * linux-image-6.1.0-50-cloud-amd64, to compare against an earlier run), or the current one.
 */
export async function ensureGenericKernel(log: (line: string) => void = () => {}, packageName?: string): Promise<GenericKernel> {
  if (packageName === undefined) packageName = await currentCloudKernelPackage();
  else if (!/^linux-image-[0-9][A-Za-z0-9.+-]*-cloud-amd64$/.test(packageName)) throw new Error(`${packageName} is not a Debian cloud kernel package name (linux-image-<version>-cloud-amd64)`);
  const { version, filename } = await packageFileOf(packageName);
  const dir = join(cacheRoot(), filename.replace(/\.deb$/, ""));
  const root = join(dir, "root");
  const complete = join(dir, "complete");

  if (!existsSync(complete)) {
    await mkdir(cacheRoot(), { recursive: true });
    await withFileLock(join(cacheRoot(), `${filename}.lock`), async () => {
      if (existsSync(complete)) return;
      log(`generic kernel: downloading ${packageName} ${version} from Debian (apt-get download)`);
      const staging = join(cacheRoot(), `.staging-${process.pid}`);
      await rm(staging, { recursive: true, force: true });
      await mkdir(staging, { recursive: true });
      try {
        await execFile("apt-get", ["download", `${packageName}=${version}`], { cwd: staging, code: "GENERIC_KERNEL_DOWNLOAD" });
        const deb = (await readdir(staging)).find((f) => f.endsWith(".deb"));
        if (!deb) throw new Error(`apt-get download ${packageName} left no .deb in ${staging}`);
        await execFile("dpkg-deb", ["-x", join(staging, deb), join(staging, "root")], { code: "GENERIC_KERNEL_EXTRACT" });
        const release = await releaseIn(join(staging, "root"));
        if (!existsSync(join(staging, "root", "lib", "modules", release, "modules.dep"))) {
          await ensureDepmod(log);
          await execFile("depmod", ["-b", join(staging, "root"), release], { code: "GENERIC_KERNEL_DEPMOD" });
        }
        await rm(join(staging, deb), { force: true });
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir, { recursive: true });
        await rename(join(staging, "root"), root);
        await writeFile(complete, `${packageName} ${version}\n`);
        log(`generic kernel: unpacked ${filename} into ${dir}`);
      } finally {
        await rm(staging, { recursive: true, force: true });
      }
    });
  }

  const release = await releaseIn(root);
  const vmlinuz = join(root, "boot", `vmlinuz-${release}`);
  const vmlinux = join(dir, "vmlinux");
  if (!existsSync(vmlinux)) {
    await writeFile(`${vmlinux}.${process.pid}`, bzImageKernel(await readFile(vmlinuz)));
    await rename(`${vmlinux}.${process.pid}`, vmlinux);
  }
  const config = parseKernelConfig(await readFile(join(root, "boot", `config-${release}`), "utf8"));
  return { packageName, packageFile: filename, packageVersion: version, release, vmlinuz, vmlinux, modulesDir: join(root, "lib", "modules", release), config };
}

/** `apt-cache depends linux-image-cloud-amd64` names the versioned package it pulls in. */
async function currentCloudKernelPackage(): Promise<string> {
  const { stdout } = await execFile("apt-cache", ["depends", CLOUD_KERNEL_METAPACKAGE], { code: "GENERIC_KERNEL_LOOKUP" });
  const match = /Depends:\s+(linux-image-[0-9][^\s]*-cloud-amd64)\b/.exec(stdout);
  if (!match) throw new Error(`apt-cache depends ${CLOUD_KERNEL_METAPACKAGE} names no linux-image-*-cloud-amd64 package (run apt-get update?):\n${stdout}`);
  return match[1]!;
}

/** The candidate version and its pool file name, from the local package index (no network). */
async function packageFileOf(packageName: string): Promise<{ version: string; filename: string }> {
  const { stdout } = await execFile("apt-cache", ["show", "--no-all-versions", packageName], { code: "GENERIC_KERNEL_LOOKUP" });
  const version = /^Version:\s*(\S+)/m.exec(stdout)?.[1];
  const filename = /^Filename:\s*(\S+)/m.exec(stdout)?.[1];
  if (!version || !filename) throw new Error(`apt-cache show ${packageName} gave no Version or Filename`);
  return { version, filename: basename(filename) };
}

async function releaseIn(root: string): Promise<string> {
  const releases = await readdir(join(root, "lib", "modules")).catch(() => [] as string[]);
  if (releases.length !== 1) throw new Error(`expected one kernel release under ${root}/lib/modules, found ${releases.length}`);
  return releases[0]!;
}

function parseKernelConfig(text: string): Map<string, string> {
  const config = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (match) config.set(match[1]!, match[2]!);
  }
  return config;
}

/** depmod comes with Debian's kmod, which a fresh machine lacks: the bench installs it. */
async function ensureDepmod(log: (line: string) => void): Promise<void> {
  if (["/usr/sbin/depmod", "/sbin/depmod"].some((p) => existsSync(p))) return;
  log("generic kernel: depmod missing, installing Debian's kmod");
  await execFile("apt-get", ["install", "-y", "-qq", "kmod"], { code: "KMOD_INSTALL", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
}
