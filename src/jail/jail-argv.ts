/**
 * The command line of pith-jail (pith-jail.c) for one confined program, built by a pure function
 * so every confinement a machine gets is written in one place and testable without root.
 */
export interface JailSpec {
  /** Run as this uid and gid (Pith is root); absent when Pith runs as an ordinary user. */
  uid?: number;
  gid?: number;
  /** cgroup directories to join before anything else (one per v1 hierarchy, or one v2). */
  cgroupDirs: string[];
  /**
   * A private mount namespace whose root is a read-only tmpfs on this (empty) directory, holding
   * only the paths below, each at its own path.
   */
  root?: string;
  readOnly: string[];
  readWrite: string[];
  devices: string[];
  /** Symlinks copied from the host (merged-/usr systems' /lib, /lib64, /bin, /sbin). */
  links: string[];
  /** A network namespace of its own, with nothing in it. */
  netns: boolean;
  rlimits: Partial<Record<"nofile" | "fsize" | "core" | "nproc" | "memlock", number>>;
  /**
   * pith-jail's own seccomp filter (kept across exec): namespaces, mounts, tracing, modules,
   * keyrings, BPF, io_uring and uid changes fail with EPERM; other syscall ABIs kill.
   */
  seccomp: boolean;
}

export function jailArgv(spec: JailSpec, program: string, args: string[]): string[] {
  const argv: string[] = [];
  for (const dir of spec.cgroupDirs) argv.push("--cgroup", dir);
  if (spec.root) {
    argv.push("--root", spec.root);
    for (const path of spec.links) argv.push("--link", path);
    for (const path of spec.readOnly) argv.push("--ro", path);
    for (const path of spec.readWrite) argv.push("--rw", path);
    for (const path of spec.devices) argv.push("--dev", path);
  }
  if (spec.netns) argv.push("--netns");
  for (const [name, value] of Object.entries(spec.rlimits)) argv.push("--rlimit", `${name}=${value}`);
  if (spec.seccomp) argv.push("--seccomp");
  if (spec.uid !== undefined && spec.gid !== undefined) argv.push("--uid", String(spec.uid), "--gid", String(spec.gid));
  return [...argv, "--", program, ...args];
}
