import { readdir, readFile } from "node:fs/promises";
import { basename } from "node:path";
import type { Accelerator } from "./qemu-argv.ts";
import { QEMU_BINARY } from "./qemu-binary.ts";

/** What a running Pith machine's QEMU command line says about it (the inverse of qemuArgv). */
export interface DiscoveredMachine {
  pid: number;
  owner: string;
  machineId: string;
  accelerator: Accelerator;
  consoleLog: string;
  controlSocket: string;
  qmpSocket: string;
  forwards: { hostPort: number; guestPort: number }[];
}

/**
 * Finds every Pith machine running on this host by reading /proc: the truth about what runs,
 * whatever any state file says. A QEMU is Pith's when its -name is `pith:<owner>/<machineId>`.
 */
export async function discoverMachines(): Promise<DiscoveredMachine[]> {
  const pids = (await readdir("/proc")).filter((e) => /^\d+$/.test(e)).map(Number);
  return inspectProcesses(pids);
}

/** The Pith machines among these processes (a saved handle's pid may since belong to anything). */
export async function inspectProcesses(pids: number[]): Promise<DiscoveredMachine[]> {
  const found: DiscoveredMachine[] = [];
  for (const pid of pids) {
    const raw = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    const argv = raw.split("\0").filter((a, i, all) => a !== "" || i < all.length - 1);
    if (!argv[0] || basename(argv[0]) !== QEMU_BINARY) continue;
    const machine = parseQemuArgv(pid, argv.slice(1));
    if (machine) found.push(machine);
  }
  return found.sort((a, b) => a.machineId.localeCompare(b.machineId));
}

export function parseQemuArgv(pid: number, argv: string[]): DiscoveredMachine | undefined {
  const values = (flag: string): string[] => argv.flatMap((a, i) => (a === flag && argv[i + 1] !== undefined ? [argv[i + 1]!] : []));
  const name = /^pith:([^/]+)\/(.+)$/.exec(values("-name")[0] ?? "");
  if (!name) return undefined;
  const chardevPath = (id: string): string | undefined =>
    splitOptions(values("-chardev").find((c) => splitOptions(c).includes(`id=${id}`)) ?? "")
      .find((o) => o.startsWith("path="))
      ?.slice("path=".length);
  const qmp = splitOptions(values("-qmp")[0]?.replace(/^unix:/, "") ?? "")[0];
  const consoleLog = chardevPath("console");
  const controlSocket = chardevPath("control");
  if (!consoleLog || !controlSocket || !qmp) return undefined;
  const forwards = splitOptions(values("-netdev")[0] ?? "")
    .flatMap((o) => {
      const m = /^hostfwd=tcp:127\.0\.0\.1:(\d+)-:(\d+)$/.exec(o);
      return m ? [{ hostPort: Number(m[1]), guestPort: Number(m[2]) }] : [];
    });
  return {
    pid,
    owner: name[1]!,
    machineId: name[2]!,
    accelerator: values("-accel")[0]?.startsWith("kvm") ? "kvm" : "tcg",
    consoleLog,
    controlSocket,
    qmpSocket: qmp,
    forwards,
  };
}

/** The inverse of optValue: split at single commas, and a doubled comma is a comma. */
export function splitOptions(text: string): string[] {
  return text.split(/(?<!,),(?!,)/).map((part) => part.replaceAll(",,", ","));
}
