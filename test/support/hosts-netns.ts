import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { join } from "node:path";
import { pithRoot } from "../../src/shared/paths.ts";

/**
 * Several "hosts" on one machine: a network namespace each, joined by veth pairs to a bridge
 * that lives in a namespace of its own, with addresses in 10.213.0.0/24 that exist only inside
 * those namespaces (the real host has no interface, address or route in that range). Every veth
 * is created inside the namespaces, so nothing of this topology ever appears on the real host.
 *
 * The test itself runs on the real host: it reaches a listener inside a namespace through a
 * relay (ns-relay.mjs) over a unix socket, which loopback TCP on the real host leads to.
 */
export const SUBNET_PREFIX = "10.213.0";

export interface NamespaceHost {
  ns: string;
  address: string;
}

const ip = (...args: string[]): string => execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

export class HostNetwork {
  readonly hosts = new Map<string, NamespaceHost>();
  private readonly bridgeNs: string;
  private readonly children: ChildProcess[] = [];
  private readonly relays: Server[] = [];
  private destroyed = false;

  constructor(private readonly id: string, private readonly runDir: string) {
    this.bridgeNs = `pith-h${id}-br`;
    try {
      ip("netns", "add", this.bridgeNs);
      ip("-n", this.bridgeNs, "link", "add", "br0", "type", "bridge");
      ip("-n", this.bridgeNs, "link", "set", "br0", "up");
    } catch (error) {
      this.destroy(() => []);
      throw error;
    }
  }

  /** A namespace joined to the bridge, with `.N` of the subnet on its eth0. */
  addHost(name: string, lastOctet: number): NamespaceHost {
    const ns = `pith-h${this.id}-${name}`;
    const address = `${SUBNET_PREFIX}.${lastOctet}`;
    ip("netns", "add", ns);
    // Known before it is complete, so destroy() removes a half-made host too.
    this.hosts.set(name, { ns, address });
    ip("-n", ns, "link", "set", "lo", "up");
    const bridgeSide = `v${this.id}${name}`.slice(0, 15);
    ip("-n", this.bridgeNs, "link", "add", bridgeSide, "type", "veth", "peer", "name", "eth0", "netns", ns);
    ip("-n", this.bridgeNs, "link", "set", bridgeSide, "master", "br0");
    ip("-n", this.bridgeNs, "link", "set", bridgeSide, "up");
    ip("-n", ns, "addr", "add", `${address}/24`, "dev", "eth0");
    ip("-n", ns, "link", "set", "eth0", "up");
    return this.hosts.get(name)!;
  }

  /** Spawns argv inside a host's namespace; the process is killed at destroy(). */
  spawnIn(host: NamespaceHost, argv: string[], env: NodeJS.ProcessEnv, onOutput: (text: string) => void): ChildProcess {
    const child = spawn("ip", ["netns", "exec", host.ns, ...argv], { stdio: ["ignore", "pipe", "pipe"], env, cwd: pithRoot() });
    for (const stream of [child.stdout!, child.stderr!]) stream.setEncoding("utf8").on("data", onOutput);
    this.children.push(child);
    return child;
  }

  /** A loopback port on the real host that leads to `port` at `host`'s address, through a unix socket. */
  async relay(host: NamespaceHost, port: number): Promise<number> {
    const socketPath = join(this.runDir, `relay-${host.ns}-${port}.sock`);
    const child = this.spawnIn(host, [process.execPath, join(pithRoot(), "test/support/ns-relay.mjs"), socketPath, host.address, String(port)], process.env, () => {});
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once("data", () => resolve());
      child.once("exit", (code) => reject(new Error(`relay into ${host.ns} exited (${code})`)));
    });
    const server = createServer((client) => {
      const upstream = createConnection(socketPath);
      client.pipe(upstream).pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.relays.push(server);
    return (server.address() as { port: number }).port;
  }

  /** A host's loss: every process in its namespace and every `processes` pid SIGKILLed, then the namespace (and its veth) deleted. */
  lose(name: string, pids: number[]): void {
    const host = this.hosts.get(name);
    if (!host) return;
    killAll(host.ns, pids);
    try {
      ip("netns", "del", host.ns);
    } catch {
      // already gone
    }
    this.hosts.delete(name);
  }

  /** Kills what it started and deletes every namespace; idempotent, for after() even on failure. */
  destroy(extraPids: () => number[]): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const relay of this.relays) relay.close();
    for (const child of this.children) if (child.exitCode === null) child.kill("SIGKILL");
    for (const name of [...this.hosts.keys()]) this.lose(name, []);
    killAll(this.bridgeNs, extraPids());
    try {
      ip("netns", "del", this.bridgeNs);
    } catch {
      // never made
    }
  }
}

/** SIGKILLs the given pids and every process in `ns`, until none is left. */
function killAll(ns: string, pids: number[]): void {
  for (const pid of pids) kill(pid);
  for (let round = 0; round < 50; round++) {
    let inNs: number[];
    try {
      inNs = ip("netns", "pids", ns).split("\n").filter(Boolean).map(Number);
    } catch {
      return;
    }
    if (inNs.length === 0) return;
    for (const pid of inNs) kill(pid);
    execFileSync("sleep", ["0.1"]);
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // exited meanwhile
  }
}

/**
 * Pids of an agent's machines (QEMU, named `pith:agent.<node>/<machine>`, runs in a namespace of
 * its own, so it is not among the host namespace's pids) and their pith-nets, from /proc.
 */
export function machinePidsOf(node: string): number[] {
  const marker = `agent.${node}/`;
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(marker)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}
