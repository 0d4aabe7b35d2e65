import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { FakeHypervisor, type FakeMachine } from "../hypervisor/fake/fake-hypervisor.ts";
import type { Machine, MachineSpec } from "../hypervisor/hypervisor.ts";
import type { ImageRecord } from "../image/image.ts";
import { MachineStarter } from "./machine-starter.ts";
import { SnapshotStore } from "./snapshot-store.ts";
import { WARM_MACHINE_PREFIX, WarmPool, type WarmTemplate } from "./warm-pool.ts";
import { until as within } from "../../test/support/until.ts";

const imageWith = (digest: string): ImageRecord =>
  ({
    digest,
    name: "web",
    readiness: { kind: "call" },
    capabilities: { listen: [{ port: 8080, protocol: "http" }], egress: [], volumes: [], memoryMiB: 64, vcpus: 1 },
  }) as unknown as ImageRecord;
const IMAGE_A = imageWith(`sha256:${"a".repeat(64)}`);
const IMAGE_B = imageWith(`sha256:${"b".repeat(64)}`);

let dir: string;
let hypervisor: FakeHypervisor;
let pool: WarmPool;
let logs: string[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "pith-warm-pool-"));
  hypervisor = new FakeHypervisor({ bootMs: 5 });
  logs = [];
  pool = newPool(hypervisor);
});

afterEach(async () => {
  await pool.close();
  for (const m of await hypervisor.recover()) await m.stop();
  await rm(dir, { recursive: true, force: true });
});

function newPool(h: FakeHypervisor): WarmPool {
  const starter = new MachineStarter({ hypervisor: h, store: new SnapshotStore(join(dir, "images")), scratchDir: join(dir, "scratch"), warmUpRequests: 0 });
  return new WarmPool({ hypervisor: h, starter, stateDirFor: (id) => join(dir, id), warmUpRequests: 0, retryMs: 10, log: (m) => void logs.push(m) });
}

const template = (count: number, image = IMAGE_A, env: Record<string, string> = { GREETING: "hi" }): WarmTemplate => ({ spec: { image, kernel: "/k", initrd: "/i", env }, count });
const machineSpec = (id: string, image = IMAGE_A, env: Record<string, string> = { GREETING: "hi" }): MachineSpec => ({ id, image, kernel: "/k", initrd: "/i", env, stateDir: join(dir, id) });
const pooled = (): FakeMachine[] => hypervisor.machinesRunning().filter((m) => m.id.startsWith(WARM_MACHINE_PREFIX));

/** A condition of the pool's own state (fills run on the fake's timers), for at most 5 s. */
const until = (what: string, condition: () => boolean): Promise<true> =>
  within(what, () => condition() || undefined, { timeoutMs: 5000, everyMs: 2, context: () => `log: ${logs.join("; ")}` });

test("a pool fills with paused machines restored from the service's snapshot, warmed before they pause", async () => {
  pool.want("web", template(2));
  await until("two warm machines", () => pool.counts().web === 2);
  const machines = pooled();
  assert.equal(machines.length, 2);
  for (const m of machines) {
    assert.equal(m.paused, true);
    assert.equal(m.startedFrom, "snapshot");
    assert.deepEqual(m.identities.map((i) => i.env), [{ GREETING: "hi" }]);
  }
  // Only the snapshot source was booted besides them, and it is gone.
  assert.equal(hypervisor.machinesRunning().length, 2);
});

test("take gives a warm machine the new identity, lets it run, and the pool refills", async () => {
  pool.want("web", template(1));
  await until("one warm machine", () => pool.counts().web === 1);
  const [warm] = pooled();
  const poolId = warm!.id;

  const machine = (await pool.take("web", machineSpec("web-1a2b3c"))) as FakeMachine;
  assert.ok(machine, "a warm machine was taken");
  assert.equal(machine, warm);
  assert.equal(machine.id, "web-1a2b3c");
  assert.equal(machine.paused, false);
  assert.deepEqual(machine.identities.map((i) => i.id), [poolId, "web-1a2b3c"]);
  await machine.whenReady();

  await until("the pool refilled", () => pool.counts().web === 1);
  assert.notEqual(pooled()[0]!.id, poolId, "a new machine, not the claimed one");
  assert.equal(pool.machines().includes(machine), false, "a claimed machine never returns to the pool");
});

test("a machine of another image or env takes nothing from the pool", async () => {
  pool.want("web", template(1));
  await until("one warm machine", () => pool.counts().web === 1);
  assert.equal(await pool.take("web", machineSpec("x-1", IMAGE_B)), undefined);
  assert.equal(await pool.take("web", machineSpec("x-2", IMAGE_A, { GREETING: "other" })), undefined);
  assert.equal(await pool.take("web", { ...machineSpec("x-3"), secretHashes: { GREETING: "h" } }), undefined, "a secret value makes another env");
  pool.want("api", template(1));
  await until("the other service's pool", () => pool.counts().api === 1);
  assert.ok(await pool.take("api", machineSpec("api-1")), "its own pool serves it");
  assert.equal(await pool.take("api", machineSpec("api-2")), undefined, "the same image and env in another service's pool is not taken");
  assert.equal(pool.counts().web, 1);
  assert.equal(pooled()[0]!.paused, true);
});

test("a changed template discards the pool's machines and fills it from the new one", async () => {
  pool.want("web", template(2));
  await until("two warm machines", () => pool.counts().web === 2);
  const old: Machine[] = pooled();
  pool.want("web", template(2, IMAGE_B));
  await until("the old machines stopped", () => old.every((m) => m.exit !== undefined));
  await until("two new warm machines", () => pool.counts().web === 2);
  assert.equal(await pool.take("web", machineSpec("old-1", IMAGE_A)), undefined, "nothing of the old image is left");
  assert.ok(await pool.take("web", machineSpec("new-1", IMAGE_B)));
});

test("a smaller count trims the pool; dropping it (a deleted service) stops every machine", async () => {
  pool.want("web", template(3));
  await until("three warm machines", () => pool.counts().web === 3);
  pool.want("web", template(1));
  await until("one left", () => pooled().length === 1 && pool.counts().web === 1);
  pool.want("web", undefined);
  await until("none left", () => pooled().length === 0);
  assert.deepEqual(pool.counts(), {});
});

/** A fake whose second warm machine's start waits for `release()`: a fill held under way. */
class SecondWarmStartWaits extends FakeHypervisor {
  #warmStarts = 0;
  #release!: () => void;
  readonly released = new Promise<void>((resolve) => (this.#release = resolve));
  waiting = false;
  release(): void {
    this.#release();
  }
  override async start(spec: MachineSpec): Promise<Machine> {
    if (spec.warmPool && ++this.#warmStarts === 2) {
      this.waiting = true;
      await this.released;
    }
    return super.start(spec);
  }
}

test("a count lowered while a machine warms up: that machine is discarded when it is done, not kept over the count", async () => {
  const held = new SecondWarmStartWaits({ bootMs: 5 });
  const heldPool = newPool(held);
  try {
    heldPool.want("web", template(2));
    await until("one ready, the second's start held", () => heldPool.counts().web === 1 && held.waiting);
    heldPool.want("web", template(1));
    held.release();
    const warm = (): FakeMachine[] => held.machinesRunning().filter((m) => m.id.startsWith(WARM_MACHINE_PREFIX));
    await until("the held fill has ended", () => heldPool.heldMemoryMiB() === 64 && warm().length === 1);
    assert.equal(heldPool.counts().web, 1);
  } finally {
    held.release();
    await heldPool.close();
    for (const m of await held.recover()) await m.stop();
  }
});

test("a pool machine that ends while paused is replaced", async () => {
  pool.want("web", template(1));
  await until("one warm machine", () => pool.counts().web === 1);
  const [first] = pooled();
  hypervisor.crash(first!.id);
  await until("replaced", () => pool.counts().web === 1 && pooled().length === 1 && pooled()[0]!.id !== first!.id);
});

test("a hypervisor that cannot pause gets no pool, and leaves nothing running", async () => {
  class NoPause extends FakeHypervisor {
    override async start(spec: MachineSpec): Promise<Machine> {
      const machine = await super.start(spec);
      return Object.assign(Object.create(Object.getPrototypeOf(machine) as object) as Machine, machine, { pause: undefined });
    }
  }
  await pool.close();
  hypervisor = new NoPause({ bootMs: 1 });
  pool = newPool(hypervisor);
  pool.want("web", template(1));
  await until("a failed fill was logged", () => logs.some((l) => l.includes("cannot pause")));
  await until("its machine stopped", () => hypervisor.machinesRunning().length === 0);
  assert.equal(pool.counts().web, 0);
});

test("a machine that fails its pause (its app did not answer the rehearsal) is stopped, and the pool tries again", async () => {
  let failures = 1;
  class FailsFirstPause extends FakeHypervisor {
    override async start(spec: MachineSpec): Promise<Machine> {
      const machine = (await super.start(spec)) as FakeMachine;
      if (spec.warmPool && failures > 0) {
        failures--;
        machine.pause = () => Promise.reject(new Error(`machine ${spec.id} was not ready again within its ready timeout`));
      }
      return machine;
    }
  }
  await pool.close();
  hypervisor = new FailsFirstPause({ bootMs: 1 });
  pool = newPool(hypervisor);
  pool.want("web", template(1));
  await until("a warm machine after the failed one", () => pool.counts().web === 1);
  assert.ok(logs.some((l) => /cannot make a warm machine \(retrying in \d+ ms\): .*not ready again/.test(l)), logs.join("; "));
  assert.equal(pooled().length, 1, "the machine that failed its pause was stopped");
  assert.equal(pooled()[0]!.paused, true);
});

test("close waits for a fill under way: once it resolves, none of the pools' machines is running", async () => {
  pool.want("web", template(1));
  // The fill is under way (its snapshot source or restored machine may be running): close now.
  await until("a fill has started a machine", () => hypervisor.machinesRunning().length > 0);
  await pool.close();
  assert.deepEqual(hypervisor.machinesRunning().map((m) => m.id), [], "nothing left running once close resolved");
  assert.equal(pool.counts().web, undefined);
});

test("the memory the pool holds counts machines ready and being made; without room on the host it waits for refill()", async () => {
  let room = 64;
  const held: number[] = [];
  pool = new WarmPool({
    hypervisor,
    starter: new MachineStarter({ hypervisor, store: new SnapshotStore(join(dir, "images")), scratchDir: join(dir, "scratch"), warmUpRequests: 0 }),
    stateDirFor: (id) => join(dir, id),
    warmUpRequests: 0,
    retryMs: 10,
    // The host as the agent sees it: 64 MiB left beside the pool's own machines.
    hasRoomFor: (memoryMiB) => room - pool.heldMemoryMiB() >= memoryMiB,
    log: (m) => void logs.push(m),
  });
  assert.equal(pool.heldMemoryMiB(), 0);
  pool.want("web", template(2));
  held.push(pool.heldMemoryMiB());
  await until("one warm machine", () => pool.counts().web === 1);
  // The second does not fit: the pool stops at one and says so once.
  await until("the second is refused for room", () => logs.some((l) => l.includes("no room on this host for another 64 MiB machine")));
  assert.equal(pool.counts().web, 1);
  assert.equal(pool.heldMemoryMiB(), 64);
  pool.refill();
  assert.equal(logs.filter((l) => l.includes("no room")).length, 1, "said once while nothing changed");
  assert.equal(pooled().length, 1);

  room = 128;
  pool.refill();
  await until("the second warm machine", () => pool.counts().web === 2);
  assert.equal(pool.heldMemoryMiB(), 128);
  // While the first was being made it counted already: a fill reserves its memory.
  assert.deepEqual(held, [64]);
});

test("refill() leaves a pool that just gave a machine away to its own delay", async () => {
  pool.want("web", template(1));
  await until("one warm machine", () => pool.counts().web === 1);
  const machine = await pool.take("web", machineSpec("web-1"));
  assert.ok(machine);
  // A heartbeat right after the claim: the claimed machine's first answers keep the CPU. A fill
  // counts its machine's memory from the moment it begins, so none may be held now.
  pool.refill();
  assert.equal(pool.heldMemoryMiB(), 0, "no restore started beside the claimed machine's first answers");
  await until("the pool refills after its delay", () => pool.counts().web === 1);
});
