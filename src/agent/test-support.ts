import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { TestContext } from "node:test";
import { startTestServer, type TestServer } from "../api/test-support.ts";
import { PithClient } from "../client/index.ts";
import { ChangeLog } from "../controller/test-support.ts";
import { fakeBootSource } from "../hypervisor/fake/fake-boot-source.ts";
import { FakeHypervisor } from "../hypervisor/fake/fake-hypervisor.ts";
import type { Machine as RunningMachine, MachineSpec } from "../hypervisor/hypervisor.ts";
import type { Machine, MachinePhase } from "../model/kinds.ts";
import { API_VERSION } from "../model/resource.ts";
import { NodeAgent, type NodeAgentOptions } from "./node-agent.ts";

/** FakeHypervisor that remembers every start it was asked for, so a duplicate start shows. */
export class CountingHypervisor extends FakeHypervisor {
  readonly starts: string[] = [];

  override start(spec: MachineSpec): Promise<RunningMachine> {
    this.starts.push(spec.id);
    return super.start(spec);
  }

  /** The running machine with this id (what the agent holds a handle to). */
  async running(id: string): Promise<RunningMachine> {
    const machine = (await this.recover()).find((m) => m.id === id);
    if (!machine) throw new Error(`machine ${id} is not running on the fake hypervisor`);
    return machine;
  }
}

/** A machine's end, or a failure naming it if it has not come within `timeoutMs`. */
export function exitOf(machine: RunningMachine, timeoutMs = 5000): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`machine ${machine.id} did not stop within ${timeoutMs} ms`)), timeoutMs);
    void machine.whenExited().then(() => {
      clearTimeout(timer);
      resolve(performance.now());
    });
  });
}

export const NODE = "n1";
export const GUEST_PORT = 8080;

/**
 * A real control plane on loopback (API over SQLite, no controllers) and node agents on one
 * FakeHypervisor, in a PITH_HOME of the test's own (agents keep their handles there). The test
 * plays the controllers: it places machines and asks for their stop. Everything is torn down
 * after the test, agents first.
 */
export class AgentWorld {
  readonly hypervisor = new CountingHypervisor({ bootMs: 20 });
  readonly client: PithClient;
  private readonly agents: NodeAgent[] = [];

  private constructor(
    readonly server: TestServer,
    /** Every change to Machines since the world started. */
    readonly machines: ChangeLog<Machine>,
  ) {
    this.client = new PithClient({ server: server.url, token: server.token });
  }

  static async start(t: TestContext): Promise<AgentWorld> {
    const home = await mkdtemp(join(tmpdir(), "pith-agent-"));
    process.env.PITH_HOME = home;
    const server = await startTestServer();
    const world = new AgentWorld(server, await ChangeLog.start<Machine>(t, server.store, "Machine"));
    t.after(async () => {
      for (const agent of world.agents) agent.stop();
      await server.close();
      await rm(home, { recursive: true, force: true });
    });
    return world;
  }

  /** Starts an agent for node n1; heartbeats and resyncs are out of the way unless asked for. */
  async startAgent(options: Partial<NodeAgentOptions> = {}): Promise<NodeAgent> {
    const agent = new NodeAgent({
      client: this.client,
      hypervisor: this.hypervisor,
      nodeName: NODE,
      accelerator: "tcg",
      capacity: { memoryMiB: 4096, vcpus: 8 },
      heartbeatMs: 60_000,
      resyncMs: 60_000,
      drainMs: 0,
      bootSource: fakeBootSource("app", [GUEST_PORT]),
      ...options,
    });
    this.agents.push(agent);
    await agent.start();
    return agent;
  }

  /** A machine placed on n1, as the scheduler leaves it. */
  async place(name: string): Promise<void> {
    await this.client.create({
      apiVersion: API_VERSION,
      kind: "Machine",
      metadata: { name },
      spec: { image: "sha256:" + "f".repeat(64), node: NODE, memoryMiB: 16, vcpus: 1, desiredState: "running" },
      status: { phase: "pending" },
    });
  }

  /** Asks for a machine's stop, as the service controller does. */
  async retire(name: string): Promise<void> {
    const m = await this.client.get("Machine", name);
    if (!m) throw new Error(`no machine ${name}`);
    const { labels, resourceVersion } = m.metadata;
    await this.client.update({ apiVersion: m.apiVersion, kind: m.kind, metadata: { name, labels, resourceVersion }, spec: { ...m.spec, desiredState: "stopped" }, status: m.status });
  }

  /** Waits until the machine has been written with this phase (now or earlier in the test). */
  reaches(name: string, phase: MachinePhase, timeoutMs?: number): Promise<Machine> {
    return this.machines.until((e) => (e.type !== "DELETED" && e.object.metadata.name === name && e.object.status.phase === phase ? e.object : undefined), `machine ${name} is ${phase}`, timeoutMs);
  }

  /** Waits until the machine's object is deleted. */
  deleted(name: string, timeoutMs?: number): Promise<true> {
    return this.machines.until((e) => (e.type === "DELETED" && e.object.metadata.name === name ? true : undefined), `machine ${name} is deleted`, timeoutMs);
  }

  /** The phases a machine was written with, in order, repeats collapsed. */
  phases(name: string): string[] {
    const phases: string[] = [];
    for (const e of this.machines.events) {
      if (e.object.metadata.name !== name) continue;
      const phase = e.type === "DELETED" ? "(deleted)" : e.object.status.phase;
      if (phases.at(-1) !== phase) phases.push(phase);
    }
    return phases;
  }
}
