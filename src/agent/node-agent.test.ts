import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startTestServer, type TestServer } from "../api/test-support.ts";
import { PithClient } from "../client/index.ts";
import { FakeHypervisor } from "../hypervisor/fake/fake-hypervisor.ts";
import type { Hypervisor, Machine as RunningMachine, MachineSpec } from "../hypervisor/hypervisor.ts";
import type { ImageRecord } from "../image/image.ts";
import type { Machine } from "../model/kinds.ts";
import { waitFor } from "../../test/support/cluster.ts";
import { NodeAgent } from "./node-agent.ts";

/**
 * The fake hypervisor, except for machines named to fail: their start throws (synchronously,
 * or as a rejection, or something that is not an Error), as a buggy or broken driver might.
 */
class BreakingHypervisor implements Hypervisor {
  readonly name = "breaking";
  readonly inner = new FakeHypervisor({ bootMs: 5 });

  start(spec: MachineSpec): Promise<RunningMachine> {
    if (spec.id === "throws-sync") throw new Error("the driver blew up synchronously");
    // Not an Error: what a careless driver might do.
    if (spec.id === "throws-string") return Promise.reject("a bare string");
    if (spec.id === "rejects") return Promise.reject(new Error("no room for this machine"));
    return this.inner.start(spec);
  }
  recover(pids?: number[]): Promise<RunningMachine[]> {
    return this.inner.recover(pids);
  }
  snapshotTag(): Promise<string> {
    return this.inner.snapshotTag();
  }
}

const image = { name: "fake", digest: "sha256:f", capabilities: { listen: [], egress: [], volumes: [], memoryMiB: 64, vcpus: 1 }, readyTimeoutMs: 5000 } as unknown as ImageRecord;

let server: TestServer;
let client: PithClient;
let agent: NodeAgent;
let hypervisor: BreakingHypervisor;
const home = mkdtempSync(join(tmpdir(), "pith-agent-"));
const logged: string[] = [];

before(async () => {
  process.env.PITH_HOME = home;
  server = await startTestServer();
  client = new PithClient({ server: server.url, token: server.token });
  hypervisor = new BreakingHypervisor();
  agent = new NodeAgent({
    client,
    hypervisor,
    nodeName: "n1",
    accelerator: "tcg",
    capacity: { memoryMiB: 4096, vcpus: 8 },
    heartbeatMs: 60_000,
    resyncMs: 60_000,
    drainMs: 0,
    bootSource: async () => ({ image, kernel: "/dev/null", initrd: "/dev/null" }),
    log: (message) => logged.push(message),
  });
  await agent.start();
});

after(async () => {
  agent.stop();
  await server.close();
  rmSync(home, { recursive: true, force: true });
});

const place = (name: string) =>
  client.create({ apiVersion: "pith.dev/v1", kind: "Machine", metadata: { name }, spec: { image: image.digest, node: "n1", memoryMiB: 64, vcpus: 1, desiredState: "running" }, status: { phase: "pending" } });

const phaseOf = (name: string, phase: string): Promise<Machine> =>
  waitFor(async () => {
    const m = await client.get("Machine", name);
    return m?.status.phase === phase ? m : undefined;
  }, 10_000, `machine ${name} is ${phase}`);

test("a machine whose start throws is failed with the reason; the agent carries on with the others", async () => {
  for (const name of ["throws-sync", "throws-string", "rejects", "fine"]) await place(name);
  assert.match((await phaseOf("throws-sync", "failed")).status.reason ?? "", /^cannot start: the driver blew up synchronously$/);
  assert.match((await phaseOf("throws-string", "failed")).status.reason ?? "", /^cannot start: a bare string$/);
  assert.match((await phaseOf("rejects", "failed")).status.reason ?? "", /^cannot start: no room for this machine$/);
  await phaseOf("fine", "ready");
  // Still working: a machine placed afterwards starts, and one that dies is reported.
  await place("later");
  await phaseOf("later", "ready");
  hypervisor.inner.crash("later");
  assert.equal((await phaseOf("later", "failed")).status.reason, "crashed");
});
