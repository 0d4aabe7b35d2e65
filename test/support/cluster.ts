import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { isApiError } from "../../src/client/api-error.ts";
import { PithClient } from "../../src/client/index.ts";
import type { Role } from "../../src/model/token.ts";
import { pithHome, pithRoot } from "../../src/shared/paths.ts";
import { freeLoopbackPort } from "../../src/shared/free-port.ts";
import { until } from "./until.ts";

const PITH = join(pithRoot(), "bin/pith.js");

/**
 * A control plane and agents as separate processes, the way they crash in real life, in a
 * PITH_HOME of the test's own. Kernels, images and tools are shared with the real home through
 * symlinks: they are content-addressed caches, so sharing them is safe and saves rebuilding.
 */
export class TestCluster {
  readonly home: string;
  readonly port: number;
  /** Node names get this suffix: clusters of tests running at once never share a QEMU owner. */
  readonly id = randomBytes(3).toString("hex");
  server: ChildProcess | undefined;
  readonly agents = new Map<string, ChildProcess>();
  private logs: string[] = [];

  private constructor(home: string, port: number) {
    this.home = home;
    this.port = port;
  }

  /** `port`: the control plane's, when something was built for it beforehand (default: a free one). */
  static async create(t: TestContext, options: { port?: number } = {}): Promise<TestCluster> {
    const home = mkdtempSync(join(tmpdir(), "pith-cluster-"));
    for (const shared of ["kernel", "images", "tools"]) {
      mkdirSync(join(pithHome(), shared), { recursive: true });
      symlinkSync(join(pithHome(), shared), join(home, shared));
    }
    const cluster = new TestCluster(home, options.port ?? (await freeLoopbackPort()));
    t.after(() => cluster.destroy());
    return cluster;
  }

  /** A cluster already running: control plane, one agent on node "node-a", and a proxy if asked. */
  static async start(t: TestContext, options: { proxy?: boolean; port?: number } = {}): Promise<{ cluster: TestCluster; client: PithClient }> {
    const cluster = await TestCluster.create(t, options.port === undefined ? {} : { port: options.port });
    await cluster.startServer();
    await cluster.startAgent("node-a");
    if (options.proxy) await cluster.startProxy();
    return { cluster, client: cluster.client() };
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  client(): PithClient {
    return new PithClient({ server: this.url, token: readFileSync(join(this.home, "token"), "utf8").trim() });
  }

  private spawnPith(args: string[], token?: string): ChildProcess {
    const child = spawn(process.execPath, [PITH, ...args], {
      env: { ...process.env, PITH_HOME: this.home, PITH_ACCEL: process.env.PITH_ACCEL ?? "tcg", ...(token === undefined ? {} : { PITH_TOKEN: token }) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const tag = args[0];
    for (const stream of [child.stdout!, child.stderr!]) stream.setEncoding("utf8").on("data", (c: string) => this.logs.push(`[${tag}] ${c}`));
    return child;
  }

  async startServer(): Promise<void> {
    this.server = this.spawnPith(["server", "--port", String(this.port)]);
    await waitFor(async () => (await fetch(`${this.url}/healthz`).then((r) => r.ok).catch(() => false)) || undefined, 30_000, "the control plane answers /healthz", () => this.log());
  }

  /** The real name of a test's node, unique to this cluster. */
  node(name: string): string {
    return `${name}-${this.id}`;
  }

  async startAgent(name: string): Promise<void> {
    const node = this.node(name);
    const client = this.client();
    // As in production: an agent holds a node token for its node, never the admin token.
    this.agents.set(name, this.spawnPith(["agent", "--node", node, "--server", this.url], await this.roleToken(client, `agent-${node}`, "node", node)));
    await waitFor(async () => (await client.get("Node", node))?.status.ready || undefined, 30_000, `node ${node} registers`, () => this.log());
  }

  /** A fresh token with a role; one per name, so a restarted process gets a new one. */
  private async roleToken(client: PithClient, name: string, role: Role, node?: string): Promise<string> {
    await client.revokeToken(name).catch((e: unknown) => (isApiError(e, 404) ? undefined : Promise.reject(e)));
    return (await client.createToken({ role, name, ...(node === undefined ? {} : { node }) })).secret;
  }

  proxy: ChildProcess | undefined;
  proxyPort = 0;

  get proxyUrl(): string {
    return `http://127.0.0.1:${this.proxyPort}`;
  }

  async startProxy(): Promise<void> {
    this.proxyPort = await freeLoopbackPort();
    this.proxy = this.spawnPith(["proxy", "--port", String(this.proxyPort), "--server", this.url], await this.roleToken(this.client(), "proxy", "proxy"));
    await waitFor(
      async () => (await fetch(this.proxyUrl, { headers: { host: "nothing.invalid" } }).then((r) => r.status === 404).catch(() => false)) || undefined,
      30_000,
      "the proxy answers",
      () => this.log(),
    );
  }

  /** SIGKILL: no cleanup, no goodbye, as a crash. */
  static async kill9(child: ChildProcess | undefined): Promise<void> {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  /** PIDs of the QEMU processes an agent of this node owns, from the host's process table. */
  qemuPids(name: string): number[] {
    const out = spawnSync("pgrep", ["-f", `pith:agent\\.${this.node(name)}/`], { encoding: "utf8" }).stdout;
    return out.trim().split("\n").filter(Boolean).map(Number).sort((a, b) => a - b);
  }

  log(): string {
    return this.logs.join("").split("\n").slice(-60).join("\n");
  }

  /** A mark in the processes' output, for `logSince`. */
  logMark(): number {
    return this.logs.length;
  }

  /** Everything the processes printed after a mark. */
  logSince(mark: number): string {
    return this.logs.slice(mark).join("");
  }

  async destroy(): Promise<void> {
    for (const child of [this.server, this.proxy, ...this.agents.values()]) child?.kill("SIGKILL");
    for (const name of this.agents.keys()) spawnSync("pkill", ["-9", "-f", `pith:agent\\.${this.node(name)}/`]);
    rmSync(this.home, { recursive: true, force: true });
  }
}

/**
 * Polls `probe` (every 200 ms) until it gives a value. The processes it asks may be starting or
 * restarting, so a probe that throws is tried again; and one that never settles (a request whose
 * connection died without an error) is given up and tried again, so a wait fails with its
 * message instead of hanging.
 */
export function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string, context?: () => string): Promise<T> {
  return until(what, probe, { timeoutMs, everyMs: 200, context, retryErrors: true, probeTimeoutMs: Math.min(timeoutMs, 15_000) });
}


