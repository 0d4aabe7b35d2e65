import { readdir, readFile } from "node:fs/promises";
import { basename } from "node:path";
import { parseNetHelperArgv, type HostForward } from "./net-helper.ts";
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
  hasNetwork: boolean;
  /** The machine's pith-net, when it has a network device and that process still runs. */
  netHelper?: { pid: number; forwards: HostForward[] };
}

/**
 * Finds every Pith machine running on this host by reading /proc: the truth about what runs,
 * whatever any state file says. A QEMU is Pith's when its -name is `pith:<owner>/<machineId>`.
 */
export async function discoverMachines(): Promise<DiscoveredMachine[]> {
  return inspectProcesses(await allPids());
}

/** The Pith machines among these processes (a saved handle's pid may since belong to anything). */
export async function inspectProcesses(pids: number[]): Promise<DiscoveredMachine[]> {
  const found: DiscoveredMachine[] = [];
  for (const pid of pids) {
    const argv = await commandLine(pid);
    if (!argv[0] || basename(argv[0]) !== QEMU_BINARY) continue;
    const machine = parseQemuArgv(pid, argv.slice(1));
    if (machine) found.push(machine);
  }
  // A network helper is not among saved handles: it is found by its --machine, which names the
  // same owner and id as its QEMU's -name.
  if (found.some((m) => m.hasNetwork)) {
    const helpers = new Map<string, { pid: number; forwards: HostForward[] }>();
    for (const pid of await allPids()) {
      const helper = parseNetHelperArgv(await commandLine(pid));
      if (helper) helpers.set(`${helper.owner}/${helper.machineId}`, { pid, forwards: helper.forwards });
    }
    for (const m of found) {
      const helper = helpers.get(`${m.owner}/${m.machineId}`);
      if (m.hasNetwork && helper) m.netHelper = helper;
    }
  }
  return found.sort((a, b) => a.machineId.localeCompare(b.machineId));
}

async function allPids(): Promise<number[]> {
  return (await readdir("/proc")).filter((e) => /^\d+$/.test(e)).map(Number);
}

async function commandLine(pid: number): Promise<string[]> {
  const raw = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return raw.split("\0").filter((a, i, all) => a !== "" || i < all.length - 1);
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
  return {
    pid,
    owner: name[1]!,
    machineId: name[2]!,
    accelerator: values("-accel")[0]?.startsWith("kvm") ? "kvm" : "tcg",
    consoleLog,
    controlSocket,
    qmpSocket: qmp,
    // Its forwards are pith-net's; inspectProcesses finds that process.
    hasNetwork: values("-netdev").length > 0,
  };
}

/** The inverse of optValue: split at single commas, and a doubled comma is a comma. */
export function splitOptions(text: string): string[] {
  return text.split(/(?<!,),(?!,)/).map((part) => part.replaceAll(",,", ","));
}
