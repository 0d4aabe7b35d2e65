import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startTestServer, type TestServer } from "../api/test-support.ts";
import { PithClient } from "../client/index.ts";
import { fakeBootSource } from "../hypervisor/fake/fake-boot-source.ts";
import { FakeHypervisor } from "../hypervisor/fake/fake-hypervisor.ts";
import type { Machine } from "../model/kinds.ts";
import { API_VERSION } from "../model/resource.ts";
import { until } from "../../test/support/until.ts";
import { NodeAgent } from "./node-agent.ts";

const machine = (name: string, node: string): Parameters<PithClient["create"]>[0] => ({
  apiVersion: API_VERSION,
  kind: "Machine",
  metadata: { name },
  spec: { service: "web", image: "sha256:fake", memoryMiB: 16, vcpus: 1, desiredState: "running", node },
  status: { phase: "pending" },
});

const WAIT = { timeoutMs: 5000, everyMs: 25 };

let server: TestServer;
let home: string;
const previousHome = process.env.PITH_HOME;

before(async () => {
  home = await mkdtemp(join(tmpdir(), "pith-agent-role-"));
  process.env.PITH_HOME = home; // the agent's saved handles go here
  server = await startTestServer();
});

after(async () => {
  await server.close();
  if (previousHome === undefined) delete process.env.PITH_HOME;
  else process.env.PITH_HOME = previousHome;
  await rm(home, { recursive: true, force: true });
});

test("an agent holding only a node token registers, runs, reports and retires its machines, and leaves other nodes' alone", async () => {
  const admin = new PithClient({ server: server.url, token: server.token });
  const { secret } = await admin.createToken({ role: "node", node: "n1" });
  const logs: string[] = [];
  const agent = new NodeAgent({
    client: new PithClient({ server: server.url, token: secret }),
    hypervisor: new FakeHypervisor(),
    nodeName: "n1",
    accelerator: "tcg",
    capacity: { memoryMiB: 1024, vcpus: 4 },
    bootSource: fakeBootSource("fake", [8080]),
    drainMs: 10,
    heartbeatMs: 100,
    log: (message) => logs.push(message),
  });
  await admin.create(machine("m1", "n1"));
  await admin.create(machine("m2", "n2"));
  await agent.start();
  try {
    assert.equal((await admin.get("Node", "n1"))?.spec.capacity.memoryMiB, 1024, "it registered its own Node");
    await until("m1 is ready", async () => (await admin.get("Machine", "m1"))?.status.phase === "ready", {
      ...WAIT,
      context: async () => `m1: ${JSON.stringify((await admin.get("Machine", "m1"))?.status)}; agent: ${logs.join("; ")}`,
    });
    const m1 = (await admin.get("Machine", "m1")) as Machine;
    assert.equal(m1.status.node, "n1");
    assert.equal(m1.status.addresses?.[0]?.guestPort, 8080);
    await until("a heartbeat with m1 allocated", async () => (await admin.get("Node", "n1"))?.status.allocated?.machines === 1, WAIT);
    assert.equal((await admin.get("Machine", "m2"))?.status.phase ?? "pending", "pending", "another node's machine is not touched");

    await admin.update({ ...m1, metadata: { name: "m1" }, spec: { ...m1.spec, desiredState: "stopped" } });
    await until("m1 is stopped and deleted by its agent", async () => (await admin.get("Machine", "m1")) === undefined, { ...WAIT, context: () => `agent: ${logs.join("; ")}` });
    assert.deepEqual(logs.filter((l) => /403|may not/.test(l)), [], "no step of the agent was refused");
  } finally {
    agent.stop();
  }
});
