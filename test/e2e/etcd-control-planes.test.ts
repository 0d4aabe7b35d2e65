import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { NodeAgent } from "../../src/agent/node-agent.ts";
import { CountingHypervisor } from "../../src/agent/test-support.ts";
import { PithClient } from "../../src/client/index.ts";
import { fakeBootSource } from "../../src/hypervisor/fake/fake-boot-source.ts";
import type { Machine } from "../../src/model/kinds.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import { freeLoopbackPort } from "../../src/shared/free-port.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { EtcdTestCluster, etcdMissing } from "../../src/store/etcd/test-cluster.ts";
import { waitFor } from "../support/cluster.ts";

const PITH = join(pithRoot(), "bin/pith.js");
const LEADER_TTL_SECONDS = 3;
/** README's bound on a failover: the lease TTL, plus the follower's poll and its caches' sync (generous on a loaded 2-core host). */
const FAILOVER_BOUND_MS = LEADER_TTL_SECONDS * 1000 + 5000;
const IMAGE = "etcd-fake";
const DIGEST = `sha256:${createHash("sha256").update("pith etcd control planes test image").digest("hex")}`;

/** One `pith server` process on the etcd cluster. */
class ServerProcess {
  readonly logs: string[] = [];
  readonly child: ChildProcess;

  constructor(
    readonly port: number,
    home: string,
    storeUrl: string,
  ) {
    this.child = spawn(process.execPath, [PITH, "server", "--port", String(port), "--store", storeUrl, "--leader-ttl", String(LEADER_TTL_SECONDS)], {
      env: { ...process.env, PITH_HOME: home },
      stdio: ["ignore", "pipe", "pipe"],
    });
    for (const stream of [this.child.stdout!, this.child.stderr!]) stream.setEncoding("utf8").on("data", (c: string) => this.logs.push(`[server ${port}] ${c}`));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async healthy(): Promise<void> {
    await waitFor(async () => (await fetch(`${this.url}/healthz`).then((r) => r.ok).catch(() => false)) || undefined, 60_000, `server ${this.port} answers /healthz`, () => this.logs.join(""));
  }

  /** Whether it runs the controllers now, from its /metrics. */
  async leads(token: string): Promise<boolean> {
    const text = await fetch(`${this.url}/metrics`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.text());
    return /^pith_controllers_leader 1$/m.test(text);
  }

  async kill9(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGKILL");
    await exited;
  }
}

describe("several control planes on one etcd", { skip: etcdMissing(), timeout: 300_000 }, () => {
  test("kill -9 of the leader: the other control plane takes the controllers within the bound; scaling after it leaves exactly the right machines", async (t) => {
    const etcd = await EtcdTestCluster.start(3);
    t.after(() => etcd.destroy());
    const home = mkdtempSync(join(tmpdir(), "pith-etcd-cp-"));
    const previousHome = process.env.PITH_HOME;
    process.env.PITH_HOME = home; // the agents keep their handles here
    const servers: ServerProcess[] = [];
    const agents: NodeAgent[] = [];
    t.after(async () => {
      for (const agent of agents) agent.stop();
      for (const server of servers) await server.kill9();
      process.env.PITH_HOME = previousHome;
      rmSync(home, { recursive: true, force: true });
    });
    const log = () => `${servers.flatMap((s) => s.logs).join("").split("\n").slice(-60).join("\n")}\n${etcd.log()}`;

    // The first creates the shared admin token file; the second reads it.
    servers.push(new ServerProcess(await freeLoopbackPort(), home, etcd.storeUrl));
    await servers[0]!.healthy();
    servers.push(new ServerProcess(await freeLoopbackPort(), home, etcd.storeUrl));
    await servers[1]!.healthy();
    const token = readFileSync(join(home, "token"), "utf8").trim();

    const leader = await waitFor(
      async () => {
        const leading = await Promise.all(servers.map((s) => s.leads(token)));
        return leading.filter(Boolean).length === 1 ? servers[leading.indexOf(true)]! : undefined;
      },
      30_000,
      "exactly one control plane leads",
      log,
    );
    const survivor = servers.find((s) => s !== leader)!;
    // Both serve the API: a write through one is read through the other.
    const viaLeader = new PithClient({ server: leader.url, token });
    const client = new PithClient({ server: survivor.url, token });
    await viaLeader.create({
      apiVersion: API_VERSION,
      kind: "Image",
      metadata: { name: IMAGE, labels: { "pith.dev/name": IMAGE } },
      spec: { digest: DIGEST, runtime: "native", memoryMiB: 16, vcpus: 1, listen: [], egress: [], storedBytes: 0 },
    });
    assert.equal((await client.get("Image", IMAGE))?.spec.digest, DIGEST);

    // Three agents on the fake hypervisor, talking to the control plane that will survive.
    const hypervisor = new CountingHypervisor({ bootMs: 20 });
    for (const node of ["n1", "n2", "n3"]) {
      const agent = new NodeAgent({
        client: new PithClient({ server: survivor.url, token }),
        hypervisor,
        nodeName: node,
        accelerator: "tcg",
        capacity: { memoryMiB: 1024, vcpus: 64 },
        bootSource: fakeBootSource(IMAGE),
        heartbeatMs: 1000,
      });
      await agent.start();
      agents.push(agent);
    }

    const machinesOf = async () => (await client.list("Machine", { labels: { "pith.dev/service": "web" } })).items;
    const exactlyReady = (count: number, what: string) =>
      waitFor(
        async () => {
          const [machines, service] = await Promise.all([machinesOf(), client.get("Service", "web")]);
          const ready = machines.filter((m: Machine) => m.status.phase === "ready");
          return machines.length === count && ready.length === count && service?.status.ready === count ? machines : undefined;
        },
        60_000,
        what,
        log,
      );

    await client.create({ apiVersion: API_VERSION, kind: "Service", metadata: { name: "web" }, spec: { image: IMAGE, replicas: 3 } });
    const before = await exactlyReady(3, "3 machines are ready under the first leader");
    assert.equal(new Set(before.map((m) => m.spec.node)).size, 3, "spread over the three nodes");

    const killedAt = Date.now();
    await leader.kill9();
    await waitFor(async () => (await survivor.leads(token)) || undefined, FAILOVER_BOUND_MS + 10_000, "the survivor leads", log);
    const failoverMs = Date.now() - killedAt;
    t.diagnostic(`controllers moved ${failoverMs} ms after kill -9 of the leader (lease TTL ${LEADER_TTL_SECONDS} s)`);
    assert.ok(failoverMs <= FAILOVER_BOUND_MS, `failover took ${failoverMs} ms, over the bound of ${FAILOVER_BOUND_MS} ms`);

    await client.scale("web", 5);
    const after = await exactlyReady(5, "5 machines are ready under the new leader");
    // None lost: the three from before are still there; none duplicated: each machine was started
    // once, and only five ever were.
    for (const m of before) assert.ok(after.some((a) => a.metadata.name === m.metadata.name), `machine ${m.metadata.name} was lost`);
    assert.equal(hypervisor.starts.length, 5, `starts: ${hypervisor.starts.join(", ")}`);
    assert.equal(new Set(hypervisor.starts).size, 5);
  });
});
