import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeLoopbackPort } from "../../shared/free-port.ts";

export const ETCD_BINARY = "/usr/bin/etcd";

/** Why etcd tests cannot run here, or undefined when they can (for `test(..., { skip })`). */
export function etcdMissing(): string | undefined {
  return existsSync(ETCD_BINARY) ? undefined : `${ETCD_BINARY} is missing: apt-get install etcd-server (Debian 12 ships 3.4)`;
}

/** PEM files for a cluster whose client endpoints speak TLS and require a client certificate. */
export interface TestClusterTls {
  caFile: string;
  /** The members' certificate (SAN IP:127.0.0.1) and key. */
  serverCertFile: string;
  serverKeyFile: string;
  /** A client certificate the CA signed, for health checks (and tests). */
  clientCertFile: string;
  clientKeyFile: string;
}

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  process: ChildProcess | undefined;
}

/**
 * A real etcd cluster of `size` members on free loopback ports, each with its own data dir in one
 * temp dir, for unit tests, e2e tests and benchmarks. Members can be killed (SIGKILL) and
 * restarted on the same data. `destroy()` kills every member and removes the data; tests call it
 * from `after`/`t.after`, and it is also run if the process exits without it.
 */
export class EtcdTestCluster {
  private readonly output: string[] = [];
  private destroyed = false;

  private constructor(
    private readonly dir: string,
    private readonly members: Member[],
    private readonly tls: TestClusterTls | undefined,
  ) {}

  /** `tls`: client endpoints over TLS with client certificates required (peers stay plain on loopback). */
  static async start(size = 3, options: { tls?: TestClusterTls } = {}): Promise<EtcdTestCluster> {
    const missing = etcdMissing();
    if (missing) throw new Error(missing);
    const dir = mkdtempSync(join(tmpdir(), "pith-etcd-"));
    const members: Member[] = [];
    for (let i = 0; i < size; i++) {
      members.push({ name: `m${i}`, clientPort: await freeLoopbackPort(), peerPort: await freeLoopbackPort(), dataDir: join(dir, `m${i}`), process: undefined });
    }
    const cluster = new EtcdTestCluster(dir, members, options.tls);
    live.add(cluster);
    try {
      for (let i = 0; i < size; i++) cluster.spawnMember(i, "new");
      await cluster.waitHealthy(60_000);
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  /** Client endpoints, e.g. "127.0.0.1:2379", one per member. */
  get endpoints(): string[] {
    return this.members.map((m) => `127.0.0.1:${m.clientPort}`);
  }

  /** The `--store` value for `pith server`. */
  get storeUrl(): string {
    return `etcd://${this.endpoints.join(",")}`;
  }

  /** SIGKILL of member `index`; resolves once it has exited. */
  async kill(index: number): Promise<void> {
    const child = this.members[index]!.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    this.members[index]!.process = undefined;
  }

  /** Starts a killed member again on its data dir; resolves when the cluster is healthy. */
  async restart(index: number, timeoutMs = 60_000): Promise<void> {
    if (this.members[index]!.process) return;
    this.spawnMember(index, "existing");
    await this.waitHealthy(timeoutMs);
  }

  /** The last lines the members printed, for a failing test's message. */
  log(): string {
    return this.output.join("").split("\n").slice(-40).join("\n");
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    for (let i = 0; i < this.members.length; i++) await this.kill(i);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** What `destroy` does, synchronously, for the process's exit handler. */
  destroyNow(): void {
    this.destroyed = true;
    live.delete(this);
    for (const m of this.members) m.process?.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }

  private spawnMember(index: number, state: "new" | "existing"): void {
    const m = this.members[index]!;
    const initialCluster = this.members.map((p) => `${p.name}=http://127.0.0.1:${p.peerPort}`).join(",");
    const scheme = this.tls ? "https" : "http";
    const tlsFlags = this.tls ? [`--cert-file=${this.tls.serverCertFile}`, `--key-file=${this.tls.serverKeyFile}`, `--trusted-ca-file=${this.tls.caFile}`, "--client-cert-auth"] : [];
    const child = spawn(
      ETCD_BINARY,
      [
        `--name=${m.name}`,
        `--data-dir=${m.dataDir}`,
        `--listen-client-urls=${scheme}://127.0.0.1:${m.clientPort}`,
        `--advertise-client-urls=${scheme}://127.0.0.1:${m.clientPort}`,
        ...tlsFlags,
        `--listen-peer-urls=http://127.0.0.1:${m.peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${m.peerPort}`,
        `--initial-cluster=${initialCluster}`,
        `--initial-cluster-state=${state}`,
        `--initial-cluster-token=${this.dir}`,
        // A loaded 2-core host: etcd's defaults (100 ms / 1 s) keep elections from flapping.
        "--heartbeat-interval=100",
        "--election-timeout=1000",
        "--logger=zap",
        "--log-level=warn",
        "--log-outputs=stderr",
        // The default 8 MiB snapshot count and 2 GiB quota are fine; no metrics listener.
      ],
      // Its own process group: a Ctrl-C meant for the test runner reaches the cleanup, not etcd first.
      { stdio: ["ignore", "ignore", "pipe"], detached: true },
    );
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      this.output.push(`[${m.name}] ${chunk}`);
      if (this.output.length > 400) this.output.splice(0, 200);
    });
    child.on("error", (error) => this.output.push(`[${m.name}] spawn failed: ${error.message}\n`));
    m.process = child;
  }

  private memberHealthy(port: number): Promise<boolean> {
    return healthOver(port, this.tls);
  }

  /**
   * Every running member answers /health with "true" (which needs a leader and a quorum): after
   * a kill, the survivors have elected a leader if the dead member led.
   */
  async waitHealthy(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const running = this.members.filter((m) => m.process);
      const answers = await Promise.all(running.map((m) => this.memberHealthy(m.clientPort)));
      if (answers.every(Boolean)) return;
      if (Date.now() > deadline) throw new Error(`etcd cluster not healthy within ${timeoutMs} ms\n${this.log()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Whether `/health` on a member's client port says "true", over TLS with the client certificate if the cluster has one. */
function healthOver(port: number, tls: TestClusterTls | undefined): Promise<boolean> {
  if (!tls) {
    return fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) })
      .then(async (r) => ((await r.json()) as { health?: string }).health === "true")
      .catch(() => false);
  }
  return new Promise((resolve) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/health", ca: readFileSync(tls.caFile), cert: readFileSync(tls.clientCertFile), key: readFileSync(tls.clientKeyFile), timeout: 2000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("end", () => resolve(/"health":\s*"true"/.test(body)));
      },
    );
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

/** Clusters not destroyed yet: killed if the process exits first (a test that threw past its cleanup). */
const live = new Set<EtcdTestCluster>();
process.once("exit", () => {
  for (const cluster of live) cluster.destroyNow();
});
