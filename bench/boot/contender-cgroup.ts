/**
 * A cgroup for a generic VM's QEMU, made the way Pith's jail makes a machine's (same parent, same
 * limits, same CPU weight). Without it the comparison is not fair on a busy host: Pith's machine
 * sits in Pith's parent cgroup, which weighs the sum of its children (every machine cgroup on the
 * host, idle or not), while a QEMU left in the bench's own cgroup weighs one task. Measured on
 * 2026-12-06 at load 10: Pith's hello-ts boot took 3.4 s as on a quiet host, the generic VM's 13 s
 * (2x its quiet-host time), with the parent weighing six tasks.
 */
import { CgroupHost, type MachineCgroup } from "../../src/jail/cgroups.ts";
import { machineCgroupLimits } from "../../src/jail/jailer.ts";

export interface ContenderCgroup {
  /** The directories whose cgroup.procs the QEMU process joins. */
  dirs: string[];
  remove(): Promise<void>;
}

/** undefined where machines get no cgroup either (not root, or no usable hierarchy). */
export async function contenderCgroup(name: string, machine: { memoryMiB: number; vcpus: number }): Promise<ContenderCgroup | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const host = CgroupHost.detect();
  if ("missing" in host) return undefined;
  const cgroup: MachineCgroup = await host.create(name, machineCgroupLimits({ ...machine, accelerator: "tcg" }));
  return { dirs: cgroup.dirs, remove: () => host.remove(cgroup) };
}

/**
 * Runs `binary` inside the cgroup from its first instruction: a shell joins the cgroup, then
 * execs it (joining after spawn would leave its first moments, and threads, outside).
 */
export function inCgroup(dirs: string[], binary: string, args: string[]): { binary: string; args: string[] } {
  if (dirs.length === 0) return { binary, args };
  for (const dir of dirs) if (/[\s'"\\$`]/.test(dir)) throw new Error(`unexpected characters in cgroup path ${dir}`);
  const join = dirs.map((d) => `echo $$ > ${d}/cgroup.procs`).join(" && ");
  return { binary: "/bin/sh", args: ["-c", `${join} && exec "$@"`, "sh", binary, ...args] };
}
