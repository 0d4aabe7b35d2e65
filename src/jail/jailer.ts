import { chown, mkdir, readFile, stat } from "node:fs/promises";
import { existsSync, lstatSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { JailStatus } from "../model/kinds.ts";
import { pithRoot } from "../shared/paths.ts";
import { ensurePrivateDir, touchPrivateFile } from "../shared/private-files.ts";
import { ensureStaticCProgram } from "../shared/static-c-program.ts";
import { CgroupHost, type CgroupLimits, type MachineCgroup } from "./cgroups.ts";
import { jailArgv, type JailSpec } from "./jail-argv.ts";
import { processUid, UidPool } from "./uid-pool.ts";
import { DEFAULT_CLAIMS_DIR, VolumeClaims } from "../volume/volume-claims.ts";
import { pithHome } from "../shared/paths.ts";

/** What confines one machine, as `pith describe machine` and the Machine's status show it. */
export type JailReport = JailStatus;

/** What this host lets Pith do, found once per process. */
export interface JailSupport {
  root: boolean;
  cgroups: CgroupHost | undefined;
  /** Namespaces: as root always; as an ordinary user only through user namespaces. */
  namespaces: boolean;
  missing: string[];
}

/** The rlimits of a jailed VMM: enough descriptors for QEMU, no core dumps of guest memory. */
const RLIMITS = { nofile: 1024, core: 0 } as const;
/**
 * The largest file a VMM may write: its console log, which Pith rotates at a much smaller size;
 * this stops a flood from filling the disk while nobody rotates it (the agent is down).
 */
export const CONSOLE_FILE_LIMIT_BYTES = 64 * 1024 * 1024;
/** Threads and processes of one machine: QEMU's I/O thread pool (64), vCPUs, its network helper. */
const PIDS_LIMIT = 256;

/** Memory a machine's host processes may use beyond the guest's own RAM, by accelerator. */
export const VMM_OVERHEAD_MIB = { tcg: 384, kvm: 96 } as const;
/** CPU beyond the guest's vCPUs, for QEMU's main loop and I/O threads. */
export const VMM_CPU_OVERHEAD = 1;

/** What a machine's cgroup allows (bench/boot gives a generic VM's QEMU the same). */
export function machineCgroupLimits(machine: Pick<MachineJailRequest, "memoryMiB" | "vcpus" | "accelerator">): CgroupLimits {
  return {
    memoryBytes: (machine.memoryMiB + VMM_OVERHEAD_MIB[machine.accelerator]) * 1024 * 1024,
    pids: PIDS_LIMIT,
    cpus: machine.vcpus + VMM_CPU_OVERHEAD,
  };
}

export interface MachineJailRequest {
  /** Unique for the machine's life on this host (owner, id, state dir). */
  key: string;
  /** A name for the machine's cgroup (letters, digits, `.-_`). */
  name: string;
  stateDir: string;
  memoryMiB: number;
  vcpus: number;
  accelerator: "kvm" | "tcg";
  /**
   * Volume files the VMM writes: claimed for this machine alone (refused if another machine on
   * this host holds one), given to its uid, and bound read-write into the VMM's root only.
   */
  volumes?: { path: string; bytes: number }[];
}

/** A machine's jail as its driver keeps it: what it is, why it ended, and its clean-up. */
export interface JailHandle {
  readonly report: JailReport;
  /** Why the jail ended the machine (its memory limit, its file-size limit), if it did. */
  explain(signal: NodeJS.Signals | null): Promise<string | undefined>;
  /** After the machine is gone: its cgroup removed, its uid given back. */
  release(): Promise<void>;
}

/** The jail prepared for one machine: where its VMM may write, and how to start things in it. */
export interface MachineJail extends JailHandle {
  /** Where the VMM creates its sockets: the one directory it may write besides its console. */
  readonly runDir: string;
  readonly consoleLog: string;
  /**
   * The argv that runs `program` confined: the machine's uid, cgroup and rlimits, and where the
   * host allows namespaces, a private read-only root holding only /usr, the run dir, the console
   * and `readOnly` (with `root`), and an empty network namespace (with `netns`). What the VMM
   * got (`vmm`) is recorded in the report.
   */
  command(program: string, args: string[], options: JailOptions): { binary: string; argv: string[] };
}

export interface JailOptions {
  root: boolean;
  netns: boolean;
  readOnly?: string[];
  devices?: string[];
  /** This is the machine's VMM, whose confinement the report describes. */
  vmm?: boolean;
}

export class Jailer {
  private static detected: Promise<Jailer> | undefined;
  private constructor(
    readonly support: JailSupport,
    private readonly jailBinary: string,
    private readonly uids: UidPool,
    private readonly volumeClaims: VolumeClaims,
  ) {}

  /** The host's jailer, detected once per process; prints what is missing once. */
  static forHost(): Promise<Jailer> {
    return (this.detected ??= this.detect());
  }

  static async detect(options: { cgroupRoot?: string; uids?: UidPool; volumeClaims?: VolumeClaims; quiet?: boolean } = {}): Promise<Jailer> {
    const binary = await ensureStaticCProgram("pith-jail", join(pithRoot(), "src/jail/pith-jail.c"));
    const root = process.getuid?.() === 0;
    const missing: string[] = [];
    let cgroups: CgroupHost | undefined;
    if (!root) {
      missing.push("uid: Pith is not running as root, so its machines run as your own user");
      missing.push("cgroup: only root may create cgroups here, so machines have no memory, pids or CPU limit");
    } else {
      const found = CgroupHost.detect(options.cgroupRoot);
      if ("missing" in found) missing.push(`cgroup: ${found.missing}`);
      else cgroups = found;
    }
    const namespaces = root || userNamespacesAllowed();
    if (!namespaces) missing.push("namespaces: this kernel does not let an ordinary user create user namespaces, so machines see the host's files and network");
    const jailer = new Jailer({ root, cgroups, namespaces, missing }, binary, options.uids ?? new UidPool(),
      options.volumeClaims ?? new VolumeClaims(root ? DEFAULT_CLAIMS_DIR : join(pithHome(), "volume-claims")));
    if (missing.length > 0 && !options.quiet) {
      console.warn(`pith: machines run with part of the jail missing:\n${missing.map((m) => `  - ${m}`).join("\n")}`);
    }
    return jailer;
  }

  async prepare(request: MachineJailRequest): Promise<MachineJail> {
    const { support } = this;
    const { runDir, consoleLog, rootDir } = await layOutStateDir(request.stateDir);

    const report: JailReport = { seccomp: false, mountNamespace: false, networkNamespace: false, missing: [...support.missing] };
    let uid: number | undefined;
    let cgroup: MachineCgroup | undefined;
    const volumes = request.volumes ?? [];
    let volumesClaimed = false;
    const release = async (): Promise<void> => {
      await this.release(request.key, cgroup, uid);
      if (volumesClaimed) await this.releaseVolumes(request.key, volumes.map((v) => v.path));
    };
    try {
      // Before anything else: a machine whose volume another machine holds must not start at all.
      await this.volumeClaims.claimAll(request.key, volumes.map((v) => v.path));
      volumesClaimed = true;
      if (support.root) {
        uid = await this.uids.claim(request.key);
        report.uid = uid;
        report.gid = uid;
        // The VMM owns its sockets' directory, its console and its volumes, nothing else.
        await chown(runDir, uid, uid);
        await chown(consoleLog, uid, uid);
        for (const volume of volumes) await chown(volume.path, uid, uid);
      }
      if (support.cgroups) {
        await this.sweepCgroups(support.cgroups);
        const limits = machineCgroupLimits(request);
        cgroup = await support.cgroups.create(`${request.name}.${uid ?? process.pid}`, limits);
        report.cgroup = cgroup.path;
        report.limits = limits;
      }
    } catch (e) {
      await release();
      throw e;
    }

    const jailBinary = this.jailBinary;
    return {
      report,
      explain: (signal) => this.explain(cgroup, signal),
      runDir,
      consoleLog,
      command(program, args, options) {
        const root = options.root && support.namespaces;
        const netns = options.netns && support.namespaces;
        if (options.vmm) {
          report.mountNamespace = root;
          report.networkNamespace = netns;
        }
        const spec: JailSpec = {
          ...(uid !== undefined ? { uid, gid: uid } : {}),
          cgroupDirs: cgroup?.dirs ?? [],
          ...(root ? { root: rootDir } : {}),
          links: systemLinks(),
          readOnly: ["/usr", ...systemDirs(), ...(options.readOnly ?? [])],
          // Volumes go to the VMM only, never to pith-net.
          readWrite: [runDir, consoleLog, ...(options.vmm ? volumes.map((v) => v.path) : [])],
          devices: options.devices ?? [],
          netns,
          rlimits: { ...RLIMITS, fsize: fileSizeLimit(options.vmm ? volumes : []) },
          // Beneath QEMU's own -sandbox, and the only filter pith-net has.
          seccomp: true,
        };
        return { binary: jailBinary, argv: jailArgv(spec, program, args) };
      },
      release,
    };
  }

  /**
   * No jail at all: the VMM runs as Pith does, with the host's files and network. Only for
   * measuring what the jail costs (bench/jail); nothing a user runs can ask for it.
   */
  static async unconfined(request: Pick<MachineJailRequest, "stateDir">): Promise<MachineJail> {
    const { runDir, consoleLog } = await layOutStateDir(request.stateDir);
    const report: JailReport = { seccomp: false, mountNamespace: false, networkNamespace: false, missing: ["jail: started unconfined, to measure the jail's cost"] };
    return { report, runDir, consoleLog, command: (program, args) => ({ binary: program, argv: args }), explain: async () => undefined, release: async () => {} };
  }

  /** The jail of a machine found running after a restart, read back from its process. */
  async adopt(request: Pick<MachineJailRequest, "key">, pid: number): Promise<JailHandle> {
    const uid = processUid(pid);
    const cgroup = this.support.cgroups?.find(pid);
    const root = (await readFile(`/proc/${pid}/mountinfo`, "utf8").catch(() => "")).split("\n")[0]?.includes(" / / ro,") ?? false;
    const netns = await isOwnNetns(pid);
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
    const report: JailReport = {
      ...(uid !== undefined && uid !== 0 && this.uids.contains(uid) ? { uid, gid: uid } : {}),
      ...(cgroup ? { cgroup: cgroup.path } : {}),
      seccomp: /^Seccomp:\s+2$/m.test(status),
      mountNamespace: root,
      networkNamespace: netns,
      missing: [...this.support.missing],
    };
    return {
      report,
      explain: (signal) => this.explain(cgroup, signal),
      release: () => this.release(request.key, cgroup, report.uid),
    };
  }

  /**
   * Machines that ended with nobody watching (their manager killed first) leave an empty cgroup.
   * Before making a new one, those whose uid is free again are removed: a cgroup named for a
   * uid still claimed may belong to a machine that is starting and has not joined it yet.
   */
  private async sweepCgroups(cgroups: CgroupHost): Promise<void> {
    for (const name of await cgroups.machineNames()) {
      const uid = Number(name.slice(name.lastIndexOf(".") + 1));
      if (this.uids.contains(uid) && (await this.uids.isFree(uid))) await cgroups.removeIfEmpty(name);
    }
  }

  /** After its machine is gone: its volumes back to Pith's own user, then free for the next machine. */
  private async releaseVolumes(key: string, paths: string[]): Promise<void> {
    const owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    for (const path of paths) {
      await chown(path, owner.uid, owner.gid).catch(() => {});
      await this.volumeClaims.release(key, path);
    }
  }

  /** After its machine is gone: the cgroup removed (it may already be), the uid given back. */
  private async release(key: string, cgroup: MachineCgroup | undefined, uid: number | undefined): Promise<void> {
    if (cgroup) await this.support.cgroups?.remove(cgroup).catch(() => {});
    if (uid !== undefined) await this.uids.release(uid, key);
  }

  private async explain(cgroup: MachineCgroup | undefined, signal: NodeJS.Signals | null): Promise<string | undefined> {
    if (signal === "SIGXFSZ") return `its console log reached the ${CONSOLE_FILE_LIMIT_BYTES / 1024 / 1024} MiB file-size limit (a guest flooding its console)`;
    if (cgroup && this.support.cgroups && (await this.support.cgroups.oomKills(cgroup)) > 0) {
      return `killed by its own cgroup (${cgroup.path}): it used more memory than its limit`;
    }
    return undefined;
  }
}

/**
 * The file-size rlimit caps every file the VMM writes, its volumes too (a write past the limit
 * kills it with SIGXFSZ, whatever the file's size). With volumes, it is the largest volume's size:
 * the console log can then grow that far while nobody rotates it, a cost stated in README.
 */
export function fileSizeLimit(volumes: readonly { bytes: number }[]): number {
  return Math.max(CONSOLE_FILE_LIMIT_BYTES, ...volumes.map((v) => v.bytes));
}

/**
 * A machine's state dir as the jail divides it: `vm/` (the VMM's sockets, later owned by its uid),
 * the console log, and `root/`, the empty mount point of the jail's tmpfs.
 */
async function layOutStateDir(stateDir: string): Promise<{ runDir: string; consoleLog: string; rootDir: string }> {
  const layout = { runDir: join(stateDir, "vm"), consoleLog: join(stateDir, "console.log"), rootDir: join(stateDir, "root") };
  await ensurePrivateDir(layout.runDir);
  await mkdir(layout.rootDir, { recursive: true, mode: 0o755 });
  await touchPrivateFile(layout.consoleLog);
  return layout;
}

/** The host's top-level symlinks into /usr that programs' paths go through (merged /usr). */
function systemLinks(): string[] {
  return ["/lib", "/lib64", "/bin", "/sbin"].filter((p) => existsSync(p) && lstatSync(p).isSymbolicLink());
}

/** The same top-level directories, where they are real directories (a host without merged /usr). */
function systemDirs(): string[] {
  return ["/lib", "/lib64"].filter((p) => existsSync(p) && !lstatSync(p).isSymbolicLink());
}

function userNamespacesAllowed(): boolean {
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
  };
  return read("/proc/sys/kernel/unprivileged_userns_clone")?.trim() !== "0" && Number(read("/proc/sys/user/max_user_namespaces") ?? "1") > 0;
}

async function isOwnNetns(pid: number): Promise<boolean> {
  // The namespace files' inodes name the namespaces themselves.
  const [mine, theirs] = await Promise.all([stat("/proc/self/ns/net").catch(() => undefined), stat(`/proc/${pid}/ns/net`).catch(() => undefined)]);
  return !!mine && !!theirs && mine.ino !== theirs.ino;
}
