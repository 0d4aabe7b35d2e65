import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";

/** What one machine (its QEMU and its network helper together) may use of the host. */
export interface CgroupLimits {
  memoryBytes: number;
  /** Processes and threads. */
  pids: number;
  /** CPU time as a number of cores (1.5 = one and a half cores' worth per period). */
  cpus: number;
}

/** A machine's cgroup: the directories a jailed process joins (one per v1 hierarchy, or one v2). */
export interface MachineCgroup {
  version: 1 | 2;
  /** The cgroup's path below the hierarchy's mount, as /proc/PID/cgroup shows it. */
  path: string;
  dirs: string[];
}

const V1_CONTROLLERS = ["memory", "pids", "cpu"] as const;
const CPU_PERIOD_US = 100_000;
/**
 * CPU weight: v1's `cpu.shares` and v2's `cpu.weight`, with the weight of one ordinary (nice 0)
 * task and the range the kernel accepts.
 */
const CPU_WEIGHT = {
  1: { file: "cpu.shares", task: 1024, min: 2, max: 262_144 },
  2: { file: "cpu.weight", task: 100, min: 1, max: 10_000 },
} as const;
/** Pith's machines live under this child of the cgroup Pith was started in (v1) or of the root (v2). */
export const CGROUP_PARENT = "pith";

/**
 * Cgroups for machines, on cgroup v2 where the host has it with the memory, pids and cpu
 * controllers, and on v1 hierarchies where it does not (both exist: this project's own machines
 * have v1 hierarchies and a v2 mount with no controllers). `root` is the cgroup filesystem's
 * mount point; tests point it at a directory of plain files to check what is written.
 */
export class CgroupHost {
  private constructor(
    readonly version: 1 | 2,
    /** controller -> the directory under which machine cgroups are made */
    private readonly parents: Map<string, string>,
    /** controller -> where its hierarchy is mounted (the root of the paths in /proc/PID/cgroup) */
    private readonly mounts: Map<string, string>,
  ) {}

  /** The host's cgroups, or the reason machines cannot have their own. */
  static detect(root = "/sys/fs/cgroup", selfCgroup = readSelfCgroup()): CgroupHost | { missing: string } {
    const unified = readIfExists(join(root, "cgroup.controllers"));
    if (unified !== undefined) {
      const have = new Set(unified.trim().split(/\s+/));
      const lacking = V1_CONTROLLERS.filter((c) => !have.has(c));
      if (lacking.length > 0) return { missing: `cgroup v2 at ${root} lacks the ${lacking.join(", ")} controller(s)` };
      const parent = join(root, CGROUP_PARENT);
      return new CgroupHost(2, new Map(V1_CONTROLLERS.map((c) => [c, parent])), new Map(V1_CONTROLLERS.map((c) => [c, root])));
    }
    const parents = new Map<string, string>();
    const mounts = new Map<string, string>();
    for (const controller of V1_CONTROLLERS) {
      const mount = v1Mount(root, controller);
      if (!mount) return { missing: `no cgroup v1 hierarchy for ${controller} under ${root}` };
      const own = selfCgroup.find((l) => l.controllers.includes(controller))?.path ?? "/";
      parents.set(controller, join(mount, own, CGROUP_PARENT));
      mounts.set(controller, mount);
    }
    return new CgroupHost(1, parents, mounts);
  }

  /** Makes (or resets) the machine's cgroup with these limits. */
  async create(name: string, limits: CgroupLimits): Promise<MachineCgroup> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new Error(`invalid cgroup name "${name}"`);
    if (this.version === 2) return this.createV2(name, limits);
    const dirs: string[] = [];
    for (const controller of V1_CONTROLLERS) {
      const dir = join(this.parents.get(controller)!, name);
      await mkdir(dir, { recursive: true });
      dirs.push(dir);
      if (controller === "memory") {
        // Swap would let QEMU exceed the limit by paging out; the memsw limit (where swap is
        // accounted) closes that. It must never be below the memory limit, so it goes second.
        await writeFile(join(dir, "memory.limit_in_bytes"), String(limits.memoryBytes));
        if (existsSync(join(dir, "memory.memsw.limit_in_bytes"))) await writeFile(join(dir, "memory.memsw.limit_in_bytes"), String(limits.memoryBytes));
      } else if (controller === "pids") {
        await writeFile(join(dir, "pids.max"), String(limits.pids));
      } else {
        await writeFile(join(dir, "cpu.cfs_period_us"), String(CPU_PERIOD_US));
        await writeFile(join(dir, "cpu.cfs_quota_us"), String(Math.round(limits.cpus * CPU_PERIOD_US)));
        await writeFile(join(dir, CPU_WEIGHT[1].file), String(this.machineCpuWeight(limits)));
      }
    }
    await this.rebalanceCpuWeight();
    return { version: 1, path: dirs[0]!.slice(this.mounts.get("memory")!.length), dirs };
  }

  private async createV2(name: string, limits: CgroupLimits): Promise<MachineCgroup> {
    const parent = this.parents.get("memory")!;
    await mkdir(parent, { recursive: true });
    // Controllers reach a child only when every ancestor enables them for its children.
    await writeFile(join(parent, "..", "cgroup.subtree_control"), "+memory +pids +cpu");
    await writeFile(join(parent, "cgroup.subtree_control"), "+memory +pids +cpu");
    const dir = join(parent, name);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "memory.max"), String(limits.memoryBytes));
    if (existsSync(join(dir, "memory.swap.max"))) await writeFile(join(dir, "memory.swap.max"), "0");
    await writeFile(join(dir, "pids.max"), String(limits.pids));
    await writeFile(join(dir, "cpu.max"), `${Math.round(limits.cpus * CPU_PERIOD_US)} ${CPU_PERIOD_US}`);
    await writeFile(join(dir, CPU_WEIGHT[2].file), String(this.machineCpuWeight(limits)));
    await this.rebalanceCpuWeight();
    return { version: 2, path: `/${CGROUP_PARENT}/${name}`, dirs: [dir] };
  }

  /**
   * A machine's CPU weight: as many ordinary tasks' worth as the cores it may use. Outside any
   * cgroup its QEMU's busy threads would each weigh one task; inside one, the cgroup as a whole
   * weighs only what it is given, so with the default weight a busy host gave a jailed machine
   * the CPU of a single task and its boots took 1.6x as long (bench/jail).
   */
  machineCpuWeight(limits: Pick<CgroupLimits, "cpus">): number {
    const weight = CPU_WEIGHT[this.version];
    return clamp(Math.round(weight.task * limits.cpus), weight.min, weight.max);
  }

  /**
   * Pith's parent cgroup competes with the tasks beside it as one entity: its weight is the sum
   * of its machines' (at least one task's), so together they weigh what their VMMs would outside
   * any cgroup, whatever the number of machines. Several Pith processes may make and remove
   * machines at once: each lists, writes the sum, and lists again until what it summed is still
   * what is there, so the last writer's sum counts every machine.
   */
  private async rebalanceCpuWeight(): Promise<void> {
    const weight = CPU_WEIGHT[this.version];
    const parent = this.parents.get("cpu")!;
    let listed: string | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      const children = (await readdir(parent, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory()).map((e) => e.name).sort();
      if (children.join("/") === listed) return;
      listed = children.join("/");
      let sum = 0;
      for (const child of children) sum += Number((await readFile(join(parent, child, weight.file), "utf8").catch(() => "0")).trim()) || 0;
      await writeFile(join(parent, weight.file), String(clamp(Math.max(sum, weight.task), weight.min, weight.max))).catch(() => {});
    }
  }

  /** The cgroup of an adopted machine, from its process's /proc/PID/cgroup. */
  find(pid: number): MachineCgroup | undefined {
    return this.fromProcFile(readIfExists(`/proc/${pid}/cgroup`) ?? "");
  }

  /** The machine cgroup named in a /proc/PID/cgroup text, if the process is in one of Pith's. */
  fromProcFile(text: string): MachineCgroup | undefined {
    const lines = parseCgroupFile(text);
    const isMachine = (path: string | undefined): path is string => path !== undefined && path.split("/").at(-2) === CGROUP_PARENT;
    if (this.version === 2) {
      const path = lines.find((l) => l.hierarchy === "0")?.path;
      return isMachine(path) ? { version: 2, path, dirs: [join(this.mounts.get("memory")!, path)] } : undefined;
    }
    const dirs: string[] = [];
    let shown = "";
    for (const controller of V1_CONTROLLERS) {
      const path = lines.find((l) => l.controllers.includes(controller))?.path;
      if (!isMachine(path)) return undefined;
      dirs.push(join(this.mounts.get(controller)!, path));
      shown ||= path;
    }
    return { version: 1, path: shown, dirs };
  }

  /** How many times the kernel killed a process in this cgroup for exceeding its memory. */
  async oomKills(cgroup: MachineCgroup): Promise<number> {
    const dir = cgroup.version === 2 ? cgroup.dirs[0] : cgroup.dirs.find((d) => d.startsWith(`${this.mounts.get("memory")!}/`));
    if (!dir) return 0;
    const text = await readFile(join(dir, cgroup.version === 2 ? "memory.events" : "memory.oom_control"), "utf8").catch(() => "");
    return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
  }

  /** The names of the machine cgroups under Pith's parents, in any hierarchy (one may outlive another). */
  async machineNames(): Promise<string[]> {
    const names = new Set<string>();
    for (const parent of new Set(this.parents.values())) {
      for (const entry of await readdir(parent, { withFileTypes: true }).catch(() => [])) if (entry.isDirectory()) names.add(entry.name);
    }
    return [...names].sort();
  }

  /**
   * Removes a machine cgroup left by a machine that ended while no Pith watched it (its QEMU
   * killed with its manager). The kernel refuses to remove a cgroup that still has a process,
   * so a live machine's is never touched.
   */
  async removeIfEmpty(name: string): Promise<void> {
    for (const parent of new Set(this.parents.values())) {
      await rmdir(join(parent, name)).catch(() => {});
    }
    // No weight sum here: the sweep that calls this is followed by create(), which sums them.
  }

  /**
   * Removes the cgroup once its processes are gone. A process that has exited leaves its
   * cgroup a moment later, when it is reaped, so an empty-looking directory may still be busy.
   */
  async remove(cgroup: MachineCgroup, timeoutMs = 2_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (const dir of cgroup.dirs) {
      for (;;) {
        try {
          await rmdir(dir);
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === "ENOENT") break;
          if (code !== "EBUSY" || performance.now() > deadline) throw e;
          await sleep(20);
        }
      }
    }
    await this.rebalanceCpuWeight();
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

interface CgroupLine {
  hierarchy: string;
  controllers: string[];
  path: string;
}

/** /proc/PID/cgroup: `hierarchy-id:controller,list:path` per line (v2's line is `0::path`). */
export function parseCgroupFile(text: string): CgroupLine[] {
  return text
    .split("\n")
    .filter((l) => l.includes(":"))
    .map((line) => {
      const [hierarchy, controllers, ...rest] = line.split(":");
      return { hierarchy: hierarchy!, controllers: (controllers ?? "").split(",").filter(Boolean), path: rest.join(":") };
    });
}

function readSelfCgroup(): CgroupLine[] {
  return parseCgroupFile(readIfExists("/proc/self/cgroup") ?? "");
}

/** The mount of a v1 controller: its own directory, or a joint one like cpu,cpuacct. */
function v1Mount(root: string, controller: string): string | undefined {
  const direct = join(root, controller);
  if (existsSync(join(direct, "cgroup.procs"))) return direct;
  for (const joint of ["cpu,cpuacct", "cpuacct,cpu"]) {
    if (joint.split(",").includes(controller) && existsSync(join(root, joint, "cgroup.procs"))) return join(root, joint);
  }
  return undefined;
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
