import { createInterface } from "node:readline";
import { basename, join } from "node:path";
import { systemError } from "../../shared/errors.ts";
import { logTailText } from "../../shared/file-tail.ts";
import { pithRoot } from "../../shared/paths.ts";
import { ensureLinkedCProgram } from "../../shared/static-c-program.ts";
import { spawnVm, type VmProcess } from "./vm-process.ts";

/**
 * pith-net, a machine's user network (libslirp) in a process of its own, which QEMU reaches
 * through `-netdev stream`. It is outside QEMU so that QEMU can run with spawn=deny: egress is
 * dialled by pith-net's own child, which resolves, checks and pins each destination.
 */
export const NET_HELPER = "pith-net";

/**
 * Listen ports are forwarded from one address only, never from every interface: the host's
 * loopback, or on a host of several, the node's own address (`pith agent --address`).
 */
export const FORWARD_ADDRESS = "127.0.0.1";

export interface HostForward {
  hostPort: number;
  guestPort: number;
  /** Where the forward listens; default FORWARD_ADDRESS. */
  address?: string;
}

/** A declared egress destination, reachable by the guest only at `guestAddress:guestPort`. */
export interface EgressRoute {
  guestAddress: string;
  guestPort: number;
  /** As the manifest wrote it: a DNS name (resolved per connection) or a literal IPv4 address. */
  host: string;
  port: number;
}

export interface NetHelperSpec {
  /** With the machine id, names the process so a restarted agent finds it (as QEMU's -name). */
  owner: string;
  machineId: string;
  /** The unix socket QEMU connects to; egress sockets are made next to it. */
  socketPath: string;
  forwards: HostForward[];
  egress: EgressRoute[];
}

export function netHelperArgv(spec: NetHelperSpec): string[] {
  return [
    "--machine", `${spec.owner}/${spec.machineId}`,
    "--socket", spec.socketPath,
    ...spec.forwards.flatMap((f) => ["--forward", `${f.address ?? FORWARD_ADDRESS}:${f.hostPort}:${f.guestPort}`]),
    ...spec.egress.flatMap((e) => ["--egress", `${e.guestAddress}:${e.guestPort}=${e.host}:${e.port}`]),
  ];
}

/** The inverse of netHelperArgv, for a running process's command line (argv[0] included). */
export function parseNetHelperArgv(argv: string[]): Pick<NetHelperSpec, "owner" | "machineId" | "forwards"> | undefined {
  if (!argv[0] || basename(argv[0]) !== NET_HELPER) return undefined;
  const values = (flag: string): string[] => argv.flatMap((a, i) => (a === flag && argv[i + 1] !== undefined ? [argv[i + 1]!] : []));
  const name = /^([^/]+)\/(.+)$/.exec(values("--machine")[0] ?? "");
  if (!name) return undefined;
  const forwards = values("--forward").flatMap((f) => {
    const m = /^([\d.]+):(\d+):(\d+)$/.exec(f);
    return m ? [{ address: m[1]!, hostPort: Number(m[2]), guestPort: Number(m[3]) }] : [];
  });
  return { owner: name[1]!, machineId: name[2]!, forwards };
}

/** A fresh pith-net is listening on every port in well under a second; this is for a loaded host. */
const READY_TIMEOUT_MS = 30_000;

/** How a program is run: as it is, or inside something that confines it (a jail's argv prefix). */
export type CommandWrapper = (binary: string, argv: string[]) => { binary: string; argv: string[] };

/**
 * Starts pith-net (compiled on first use) and resolves once it says `ready`: its forwards are
 * bound and its socket listens, so QEMU can connect at once. It exits by itself when QEMU closes
 * the stream. Rejects, leaving nothing running, if it fails first (a port taken, say).
 */
export async function startNetHelper(spec: NetHelperSpec, logPath: string, wrap: CommandWrapper = (binary, argv) => ({ binary, argv })): Promise<VmProcess> {
  const command = wrap(await netHelperBinary(), netHelperArgv(spec));
  const helper = spawnVm(command.binary, command.argv, logPath, [], "pipe");
  const lines = createInterface({ input: helper.stdout! });
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    new Promise<"ready">((resolve) => lines.on("line", (l) => l === "ready" && resolve("ready"))),
    helper.exited.then(() => "exited" as const),
    new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), READY_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  // It writes nothing after `ready`; an open pipe would only keep this process's event loop busy.
  lines.close();
  helper.stdout!.destroy();
  if (outcome === "ready") return helper;
  helper.kill("SIGKILL");
  await helper.exited;
  const why = outcome === "timeout" ? `not ready within ${READY_TIMEOUT_MS / 1000}s` : await lastLogLine(logPath, "it exited");
  throw systemError("NET_HELPER_FAILED", `cannot start the network of machine ${spec.machineId}: ${why}`, `see ${logPath}`);
}

let binary: Promise<string> | undefined;

/** Once per process: finding the cached build runs gcc and pkg-config, too slow for every start. */
function netHelperBinary(): Promise<string> {
  binary ??= ensureLinkedCProgram(NET_HELPER, join(pithRoot(), "src/hypervisor/qemu/net/pith-net.c"), {
    pkgConfig: "slirp",
    lib: "slirp",
    debianPackage: "libslirp-dev",
  }).catch((e: unknown) => {
    binary = undefined; // installing the library and trying again must work without a restart
    throw e;
  });
  return binary;
}

/** The end of a helper's log, where it says why it stopped. */
export async function lastLogLine(logPath: string, otherwise: string): Promise<string> {
  // The tail only: a guest can make pith-net log a line per refused connection.
  const log = (await logTailText(logPath).catch(() => "")).trim();
  return log ? log.split("\n").slice(-1)[0]! : otherwise;
}
