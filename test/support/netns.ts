import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Two network namespaces of a test's own, joined by one veth pair, with routes only between
 * them: "inner", where the software under test runs, and "outside", which holds the addresses
 * that stand for the world (TEST-NET ranges and an IPv6 documentation address, on its loopback).
 * Neither has a route to the real host or anywhere else, so a test aiming at those addresses
 * can only ever reach listeners it started itself, whatever the software under test does.
 *
 * `ip netns exec` bind-mounts /etc/netns/<inner>/<file> over /etc/<file> in the inner
 * namespace: the test's hosts and resolv.conf replace the host's there and nowhere else.
 */
export const OUTSIDE_V4 = ["192.0.2.1", "192.0.2.53", "198.51.100.1", "203.0.113.1"];
export const OUTSIDE_V6 = ["2001:db8::1"];
const OUTSIDE_NETS_V4 = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"];
/** The link between the two: the benchmarking range, which no real network routes. */
const LINK_V4 = { inner: "198.18.0.1", outside: "198.18.0.2" };
const LINK_V6 = { inner: "2001:db8:ffff::1", outside: "2001:db8:ffff::2" };

export interface NamespacePair {
  inner: string;
  outside: string;
  /** /etc/netns/<inner>: files here replace /etc's inside the inner namespace. */
  etcDir: string;
  /** Spawns argv inside a namespace (as `ip netns exec`, so with its /etc files). */
  spawnIn(ns: string, argv: string[], options?: { env?: NodeJS.ProcessEnv; cwd?: string }): ChildProcess;
  /** What `ip` says about the inner namespace's routes, for the test to check before it starts. */
  routes(ns: string): string;
  /** /proc/net/snmp and snmp6 of a namespace: counters of everything its stack received. */
  counters(ns: string): Record<string, number>;
  /** Kills every process in both namespaces, deletes them and the /etc/netns dir; idempotent. */
  destroy(): void;
}

const ip = (...args: string[]): string => execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** Why namespaces cannot be made here, or undefined when they can. */
export function missingForNamespaces(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root, for ip netns";
  try {
    ip("netns", "list");
  } catch {
    return "needs iproute2's ip with netns support";
  }
  return undefined;
}

export function createNamespacePair(id: string, hosts: string, resolvConf: string): NamespacePair {
  const inner = `pith-drill-${id}`;
  const outside = `pith-drill-out-${id}`;
  const etcRoot = "/etc/netns";
  const etcRootExisted = existsSync(etcRoot);
  const etcDir = join(etcRoot, inner);
  let destroyed = false;

  const pair: NamespacePair = {
    inner,
    outside,
    etcDir,
    spawnIn: (ns, argv, options = {}) => spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["ignore", "pipe", "pipe"], env: options.env ?? process.env, ...(options.cwd ? { cwd: options.cwd } : {}) }),
    routes: (ns) => ip("-n", ns, "-4", "route", "show") + ip("-n", ns, "-6", "route", "show"),
    counters: (ns) => parseCounters(execFileSync("ip", ["netns", "exec", ns, "cat", "/proc/net/snmp", "/proc/net/snmp6"], { encoding: "utf8" })),
    destroy: () => {
      if (destroyed) return;
      destroyed = true;
      for (const ns of [inner, outside]) killAll(ns);
      for (const ns of [inner, outside]) {
        try {
          ip("netns", "del", ns);
        } catch {
          // never created, or already gone
        }
      }
      rmSync(etcDir, { recursive: true, force: true });
      if (!etcRootExisted && existsSync(etcRoot) && readdirSync(etcRoot).length === 0) rmdirSync(etcRoot);
    },
  };

  try {
    mkdirSync(etcDir, { recursive: true });
    writeFileSync(join(etcDir, "hosts"), hosts);
    writeFileSync(join(etcDir, "resolv.conf"), resolvConf);
    ip("netns", "add", inner);
    ip("netns", "add", outside);
    for (const ns of [inner, outside]) ip("-n", ns, "link", "set", "lo", "up");
    // Both ends are created inside the namespaces: the pair never exists on the real host.
    const [innerLink, outsideLink] = [`dr${id}i`, `dr${id}o`];
    ip("-n", inner, "link", "add", innerLink, "type", "veth", "peer", "name", outsideLink, "netns", outside);
    ip("-n", inner, "addr", "add", `${LINK_V4.inner}/30`, "dev", innerLink);
    ip("-n", outside, "addr", "add", `${LINK_V4.outside}/30`, "dev", outsideLink);
    ip("-n", inner, "-6", "addr", "add", `${LINK_V6.inner}/64`, "dev", innerLink, "nodad");
    ip("-n", outside, "-6", "addr", "add", `${LINK_V6.outside}/64`, "dev", outsideLink, "nodad");
    ip("-n", inner, "link", "set", innerLink, "up");
    ip("-n", outside, "link", "set", outsideLink, "up");
    for (const address of OUTSIDE_V4) ip("-n", outside, "addr", "add", `${address}/32`, "dev", "lo");
    for (const address of OUTSIDE_V6) ip("-n", outside, "-6", "addr", "add", `${address}/128`, "dev", "lo");
    for (const net of OUTSIDE_NETS_V4) ip("-n", inner, "route", "add", net, "via", LINK_V4.outside);
    for (const address of OUTSIDE_V6) ip("-n", inner, "-6", "route", "add", `${address}/128`, "via", LINK_V6.outside);
  } catch (error) {
    pair.destroy();
    throw error;
  }
  return pair;
}

/** SIGKILLs the processes in a namespace (all of them the test's) and waits until none is left. */
function killAll(ns: string): void {
  for (let round = 0; round < 50; round++) {
    let pids: number[];
    try {
      pids = ip("netns", "pids", ns).split("\n").filter(Boolean).map(Number);
    } catch {
      return;
    }
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
    execFileSync("sleep", ["0.1"]);
  }
}

function parseCounters(text: string): Record<string, number> {
  const counters: Record<string, number> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const pair = /^(\w+): (.*)$/.exec(line);
    const next = /^(\w+): (.*)$/.exec(lines[i + 1] ?? "");
    if (pair && next && pair[1] === next[1] && !/^\d/.test(pair[2]!.trim())) {
      // /proc/net/snmp: a line of names, then a line of values, for each protocol.
      const names = pair[2]!.trim().split(/\s+/);
      const values = next[2]!.trim().split(/\s+/).map(Number);
      names.forEach((name, j) => (counters[`${pair[1]}.${name}`] = values[j]!));
      i++;
      continue;
    }
    const single = /^(\w+)\s+(\d+)$/.exec(line); // /proc/net/snmp6: one counter a line
    if (single) counters[single[1]!] = Number(single[2]);
  }
  return counters;
}
