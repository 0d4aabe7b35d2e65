import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Machine, MachineSpec } from "../../src/hypervisor/hypervisor.ts";
import { QemuHypervisor, WARM_REHEARSALS } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { MachineStarter } from "../../src/snapshot/machine-starter.ts";
import { SnapshotStore } from "../../src/snapshot/snapshot-store.ts";
import { WarmPool } from "../../src/snapshot/warm-pool.ts";
import { appImage, bootable } from "../support/images.ts";
import { missingForMachines } from "../support/machines.ts";
import { probe } from "../support/snapshot-probe.ts";

const skip = missingForMachines();


describe("warm pools of real machines", { skip, timeout: 900_000 }, () => {
  test("a warm machine serves its first request with its own identity, unlike the pool's others and the snapshot source", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "pith-warm-e2e-"));
    const hypervisor = new QemuHypervisor({ owner: "test" });
    const starter = new MachineStarter({ hypervisor, store: new SnapshotStore(join(dir, "images")), scratchDir: join(dir, "scratch") });
    const logs: string[] = [];
    const pool = new WarmPool({ hypervisor, starter, stateDirFor: (id) => join(dir, id), log: (m) => void logs.push(m) });
    const claimed: Machine[] = [];
    t.after(async () => {
      await pool.close();
      await Promise.all(claimed.map((m) => m.stop(1000)));
      rmSync(dir, { recursive: true, force: true });
    });

    const boot = await bootable(await appImage("test/fixtures/snapshot-probe"));
    const spec = (id: string): MachineSpec => ({ id, ...boot, env: {}, stateDir: join(dir, id) });
    pool.want("probe", { spec: { ...boot, env: {} }, count: 2 });
    const deadline = performance.now() + 600_000;
    while ((pool.counts().probe ?? 0) < 2) {
      if (performance.now() > deadline) assert.fail(`the pool did not fill within 10 min: ${logs.join("; ")}`);
      await sleep(200);
    }

    // Paused: its forward accepts (pith-net runs) but the guest answers nothing.
    const [paused] = pool.machines();
    const answered = await fetch(paused!.ports[0]!.url, { signal: AbortSignal.timeout(1500) }).then(() => true, () => false);
    assert.equal(answered, false, "a paused warm machine serves nothing");

    const takenAt = performance.now();
    const a = await pool.take("probe", spec("warm-a"));
    assert.ok(a, `a warm machine was taken (log: ${logs.join("; ")})`);
    claimed.push(a);
    await a.whenReady();
    const pa = await probe(a);
    const firstByteMs = performance.now() - takenAt;
    t.diagnostic(`claimed -> ready ${a.timings.readyMs} ms (cont ${a.timings.restoreMs} ms), -> first response ${Math.round(firstByteMs)} ms`);

    const b = await pool.take("probe", spec("warm-b"));
    assert.ok(b, "the pool's second machine was taken");
    claimed.push(b);
    await b.whenReady();
    const pb = await probe(b);

    assert.equal(pa.machine, "warm-a");
    assert.equal(pb.machine, "warm-b");
    assert.equal(pa.machineSeenByHook, "warm-a", "onRestore ran with the claimed identity");
    assert.deepEqual([pa.restores, pb.restores], [2, 2], "restored into the pool, then claimed");
    // Before it was paused, the pool machine rehearsed the handshake (no hook: see restores) and
    // emptied its young generation at each rehearsal, so that no scavenge falls on the claimed machine's first requests.
    const guestLines = (await readFile(a.consoleLog, "utf8")).split(/\r?\n/).filter((l) => l.startsWith("pith-guest: re"));
    assert.deepEqual(
      guestLines.map((l) => (/^pith-guest: rehearsed a restore in [\d.]+ ms \(env [\d.]+ ms, scavenge [\d.]+ ms\)$/.test(l) ? "rehearsed, scavenged" : /^pith-guest: restored in/.test(l) ? "restored" : l)),
      ["restored", ...Array<string>(WARM_REHEARSALS).fill("rehearsed, scavenged"), "restored"],
      "restored into the pool, rehearsed before the pause, then claimed",
    );
    assert.notEqual(pa.uuid, pb.uuid, "randomUUID's cache was refilled after the claim");
    assert.notEqual(pa.random, pb.random, "OpenSSL reseeded after the claim");
    assert.notEqual(pa.kernelRandom, pb.kernelRandom, "the kernel's generator got the claim's seed");
    // The snapshot source's values: drawn before it was saved, carried over, never served as fresh.
    assert.equal(pa.uuidAtStart, pb.uuidAtStart);
    assert.ok(![pa.uuid, pb.uuid].includes(pa.uuidAtStart));
    assert.ok(Math.abs(pa.now - Date.now()) < 5000, `the clock was set at the claim (off by ${pa.now - Date.now()} ms)`);
  });
});
