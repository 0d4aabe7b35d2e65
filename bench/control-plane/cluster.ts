/**
 * What every control-plane benchmark shares: a control plane (and optionally a node agent) in
 * this process, in a PITH_HOME of its own; the fake image the fake-hypervisor parts run; and the
 * cleanup of every home and QEMU the benchmark made, also on errors and Ctrl-C.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeAgent, type NodeAgentOptions } from "../../src/agent/node-agent.ts";
import { PithClient } from "../../src/client/index.ts";
import { fakeBootSource as fakeBootSourceFor } from "../../src/hypervisor/fake/fake-boot-source.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import { startControlPlane, type ControlPlane } from "../../src/server/control-plane.ts";
import { pithHome } from "../../src/shared/paths.ts";
import { withTimeout } from "./stats.ts";
import { killProcessGroup, readFileOrEmpty } from "../bench-process.ts";

/** The agents' QEMUs are named `pith:agent.bench-.../<machine>`. */
export const STRAY_QEMU_PATTERN = "pith:agent\\.bench-";

export const log = (line: string): void => void process.stderr.write(`${line}\n`);

// Like `pith agent` on this host, but never spend a boot probing KVM.
process.env.PITH_ACCEL = "tcg";
const REAL_HOME = pithHome();

// ---- cleanup: every home we made, every QEMU we started, even on Ctrl-C, error or time-out ----

const homes = new Set<string>();

/** QEMU processes of this benchmark's agents (their -name is pith:agent.bench-...). */
export function benchQemuPids(): number[] {
  const out = spawnSync("pgrep", ["-f", STRAY_QEMU_PATTERN], { encoding: "utf8" }).stdout ?? "";
  return out
    .split("\n")
    .map(Number)
    .filter((pid) => pid > 0 && pid !== process.pid);
}

export function killQemus(): number {
  const pids = new Set(benchQemuPids());
  for (const home of homes) {
    const machines = join(home, "machines");
    if (!existsSync(machines)) continue;
    for (const m of readdirSync(machines)) {
      const pid = Number(readFileOrEmpty(join(machines, m, "vm", "qemu.pid")).trim());
      if (pid > 0) pids.add(pid);
    }
  }
  let killed = 0;
  for (const pid of pids) {
    // QEMU is spawned detached: it leads its own process group.
    if (killProcessGroup(pid)) killed++;
  }
  return killed;
}

export function cleanupSync(): void {
  killQemus();
  for (const home of homes) rmSync(home, { recursive: true, force: true });
  homes.clear();
}


// ---- a control plane (and an agent) in this process, in a PITH_HOME of its own ----

export interface Cluster {
  home: string;
  cp: ControlPlane;
  /** The benchmark's own client (the agent has another). */
  client: PithClient;
  agent: NodeAgent | undefined;
  logs: string[];
}

/**
 * A fresh PITH_HOME (new state.db and token) sharing kernels, images and tools with the real
 * one through symlinks, like test/support/cluster.ts; the control plane on a free port.
 */
export async function startCluster(tag: string, agent?: Omit<NodeAgentOptions, "client" | "log">): Promise<Cluster> {
  const home = mkdtempSync(join(tmpdir(), `pith-bench-cp-${tag}-`));
  homes.add(home);
  for (const shared of ["kernel", "images", "tools"]) {
    mkdirSync(join(REAL_HOME, shared), { recursive: true });
    symlinkSync(join(REAL_HOME, shared), join(home, shared));
  }
  process.env.PITH_HOME = home;
  const logs: string[] = [];
  const keep = (prefix: string) => (line: string) => {
    logs.push(`${prefix} ${line}`);
    if (logs.length > 400) logs.splice(0, logs.length - 200);
  };
  const cp = await startControlPlane({ host: "127.0.0.1", port: 0, log: keep("[cp]") });
  const cluster: Cluster = { home, cp, client: new PithClient({ server: cp.url, token: cp.token }), agent: undefined, logs };
  if (agent) {
    try {
      cluster.agent = new NodeAgent({ ...agent, client: new PithClient({ server: cp.url, token: cp.token }), log: keep("[agent]") });
      await withTimeout(cluster.agent.start(), 30_000, "the node agent starts");
    } catch (e) {
      await stopCluster(cluster);
      throw e;
    }
  }
  return cluster;
}

export async function stopCluster(cluster: Cluster): Promise<void> {
  cluster.agent?.stop();
  // Should closing hang, say what is still open (sockets by local -> remote port).
  const slow = setTimeout(() => log(`  control plane still closing after 5 s; open: ${openHandles()}`), 5000);
  await withTimeout(cluster.cp.close(), 15_000, "the control plane closes").catch((e: Error) => log(`warning: ${e.message}`));
  clearTimeout(slow);
  // Machines of this home that are still running (only after a failure) go now.
  const killed = killQemus();
  if (killed > 0) log(`warning: killed ${killed} leftover QEMU process(es)`);
  rmSync(cluster.home, { recursive: true, force: true });
  homes.delete(cluster.home);
  process.env.PITH_HOME = REAL_HOME;
}

function openHandles(): string {
  const handles = (process as unknown as { _getActiveHandles(): { constructor: { name: string }; localPort?: number; remotePort?: number }[] })._getActiveHandles();
  return handles.map((h) => `${h.constructor.name}${h.remotePort ? ` ${h.localPort}->${h.remotePort}` : h.localPort ? ` listening ${h.localPort}` : ""}`).join(", ");
}

export const lastLogs = (cluster: Cluster, n = 15): string => cluster.logs.slice(-n).join("\n");

// ---- the fake image (FakeHypervisor runs nothing of it) ----

export const FAKE_IMAGE = "bench-fake";
const FAKE_DIGEST = `sha256:${createHash("sha256").update("pith bench/control-plane fake image").digest("hex")}`;

/** What the agent would boot: an image record and files that do not matter to FakeHypervisor. */
export const fakeBootSource = fakeBootSourceFor(FAKE_IMAGE);

export async function registerFakeImage(client: PithClient): Promise<void> {
  await client.create({
    apiVersion: API_VERSION,
    kind: "Image",
    metadata: { name: FAKE_IMAGE, labels: { "pith.dev/name": FAKE_IMAGE } },
    spec: { digest: FAKE_DIGEST, runtime: "native", memoryMiB: 16, vcpus: 1, listen: [], egress: [], storedBytes: 0 },
  });
}
