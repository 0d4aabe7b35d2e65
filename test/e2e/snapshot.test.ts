import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { readFile, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test, type TestContext } from "node:test";
import type { PithClient } from "../../src/client/index.ts";
import type { Machine, MachineSpec } from "../../src/hypervisor/hypervisor.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { API_VERSION } from "../../src/model/resource.ts";
import { pithRoot } from "../../src/shared/paths.ts";
import { sha256 } from "../../src/shared/hash.ts";
import { MachineStarter, type StartNotice } from "../../src/snapshot/machine-starter.ts";
import { SnapshotStore } from "../../src/snapshot/snapshot-store.ts";
import { TestCluster, waitFor } from "../support/cluster.ts";
import { appImage, bootable } from "../support/images.ts";
import { getOnceRouted } from "../support/load.ts";
import { missingForMachines } from "../support/machines.ts";
import { probe, type Probe } from "../support/snapshot-probe.ts";

const skip = missingForMachines();
const OWNER = "test";


/** A starter with a store and scratch space of the test's own, and everything it ran stopped at the end. */
function starterFor(t: TestContext): { starter: MachineStarter; store: SnapshotStore; dir: string; notices: StartNotice[]; started: Machine[] } {
  const dir = mkdtempSync(join(tmpdir(), "pith-snapshot-e2e-"));
  const store = new SnapshotStore(join(dir, "images"));
  const starter = new MachineStarter({ hypervisor: new QemuHypervisor({ owner: OWNER }), store, scratchDir: join(dir, "scratch") });
  const started: Machine[] = [];
  t.after(async () => {
    await Promise.all(started.map((m) => m.stop(1000)));
    rmSync(dir, { recursive: true, force: true });
  });
  return { starter, store, dir, notices: [], started };
}

describe("snapshots of real machines", { skip, timeout: 600_000, concurrency: false }, () => {
  test("machines restored from one snapshot serve, each with its own identity and fresh random values", async (t) => {
    const s = starterFor(t);
    const boot = await bootable(await appImage("test/fixtures/snapshot-probe"));
    const spec = (id: string): MachineSpec => ({ id, ...boot, stateDir: join(s.dir, id) });
    const notify = (n: StartNotice): void => void s.notices.push(n);

    const a = await s.starter.start(spec("probe-a"), "snapshot", notify);
    s.started.push(a);
    const b = await s.starter.start(spec("probe-b"), "snapshot", notify);
    s.started.push(b);
    assert.deepEqual(s.notices.map((n) => n.reason), ["SnapshotCreated", "SnapshotRestored", "SnapshotRestored"]);
    assert.equal(a.startedFrom, "snapshot");
    assert.equal(b.startedFrom, "snapshot");
    const [ta, tb] = await Promise.all([a.whenReady(), b.whenReady()]);
    assert.ok((ta.restoreMs ?? 0) > 0 && (tb.restoreMs ?? 0) > 0, "restored machines report their restore time");

    const [pa, pb] = await Promise.all([probe(a), probe(b)]);
    assert.equal(pa.machine, "probe-a");
    assert.equal(pb.machine, "probe-b");
    assert.equal(pa.machineSeenByHook, "probe-a", "onRestore ran with the new identity");
    assert.equal(pb.machineSeenByHook, "probe-b");
    assert.deepEqual([pa.restores, pb.restores], [1, 1]);
    assert.notEqual(pa.random, pb.random, "OpenSSL's generator was reseeded");
    assert.notEqual(pa.uuid, pb.uuid, "randomUUID's cache was refilled");
    assert.notEqual(pa.kernelRandom, pb.kernelRandom, "the kernel's generator was reseeded");
    // What carries over, as documented: the app's state from before the snapshot.
    assert.equal(pa.uuidAtStart, pb.uuidAtStart);
    assert.equal(pa.startedAt, pb.startedAt);
    assert.equal(pa.greeting, "hello");
    assert.ok(Math.abs(pa.now - Date.now()) < 5000, `the guest clock was set at restore (off by ${pa.now - Date.now()} ms)`);

    const [saved] = await s.store.list();
    assert.ok(saved && saved.record.bytes > 1024 * 1024 && saved.record.bytes < 256 * 1024 * 1024, `snapshot size ${saved?.record.bytes}`);
  });

  test("a snapshot source rehearses its restore before it is saved, running no onRestore hook", async (t) => {
    const s = starterFor(t);
    const hypervisor = new QemuHypervisor({ owner: OWNER });
    const boot = await bootable(await appImage("test/fixtures/snapshot-probe"));
    const source = await hypervisor.start({ id: "rehearsing-source", ...boot, stateDir: join(s.dir, "source"), snapshotSource: true });
    s.started.push(source);
    await source.whenReady();
    const file = join(s.dir, "state");
    await source.saveSnapshot(file);
    const sourceConsole = await readFile(source.consoleLog, "utf8");
    assert.match(sourceConsole, /pith-guest: rehearsed a restore in/, "the source ran the restore handshake before it was saved");
    assert.doesNotMatch(sourceConsole, /pith-guest: restored in/, "and knew it was no restore");
    await source.stop(0);

    const restored = await hypervisor.start({ id: "after-rehearsal", ...boot, stateDir: join(s.dir, "after"), restoreFrom: file });
    s.started.push(restored);
    await restored.whenReady();
    const p = await probe(restored);
    assert.equal(p.machine, "after-rehearsal");
    assert.equal(p.machineSeenByHook, "after-rehearsal", "the restore itself ran the hook, with the new identity");
    assert.equal(p.restores, 1, "the rehearsal ran no hook");
    assert.match(await readFile(restored.consoleLog, "utf8"), /pith-guest: restored in/);
  });

  test("an app that never answers the rehearsal gets no snapshot: the save fails at its ready timeout and the machine boots", async (t) => {
    const s = starterFor(t);
    const boot = await bootable(await appImage("test/fixtures/deaf-to-restore"));
    const notices: StartNotice[] = [];
    const began = performance.now();
    const machine = await s.starter.start({ id: "deaf", ...boot, stateDir: join(s.dir, "deaf") }, "snapshot", (n) => void notices.push(n));
    s.started.push(machine);
    assert.equal(machine.startedFrom, "boot");
    assert.deepEqual(notices.map((n) => n.reason), ["SnapshotFailed"]);
    assert.match(notices[0]!.message, /did not finish rehearsing its restore.*booting instead/);
    assert.ok(performance.now() - began < 240_000, "bounded by the ready timeout, not hung");
    await machine.whenReady();
    assert.deepEqual(await s.store.list(), [], "nothing half-rehearsed was saved");
  });

  test("a changed image never restores an older snapshot", async (t) => {
    const s = starterFor(t);
    const before = await bootable(await appImage("test/fixtures/snapshot-probe"));
    const manifest = await loadAppManifest(join(pithRoot(), "test/fixtures/snapshot-probe"));
    const changed = await buildImage({ ...manifest, env: { ...manifest.env, GREETING: "changed" } });
    const after = await bootable(changed);
    assert.notEqual(after.image.digest, before.image.digest);

    s.started.push(await s.starter.start({ id: "old", ...before, stateDir: join(s.dir, "old") }, "snapshot"));
    const notices: StartNotice[] = [];
    const machine = await s.starter.start({ id: "new", ...after, stateDir: join(s.dir, "new") }, "snapshot", (n) => void notices.push(n));
    s.started.push(machine);
    assert.deepEqual(notices.map((n) => n.reason), ["SnapshotCreated", "SnapshotRestored"], "a snapshot of the new image was made, not the old one used");
    await machine.whenReady();
    assert.equal((await probe(machine)).greeting, "changed");
    assert.deepEqual((await s.store.list()).map((x) => x.record.image.digest).sort(), [before.image.digest, after.image.digest].sort());
  });

  test("a truncated or unloadable snapshot falls back to a cold boot with a clear event", async (t) => {
    const s = starterFor(t);
    const boot = await bootable(await appImage("test/fixtures/snapshot-probe"));
    const spec = (id: string): MachineSpec => ({ id, ...boot, stateDir: join(s.dir, id) });
    const snapshot = await s.starter.prepare(spec("unused"));
    const original = await readFile(snapshot.stateFile);

    await truncate(snapshot.stateFile, Math.floor(original.length / 2));
    const truncatedNotices: StartNotice[] = [];
    const cold = await s.starter.start(spec("after-truncation"), "snapshot", (n) => void truncatedNotices.push(n));
    s.started.push(cold);
    assert.equal(cold.startedFrom, "boot");
    assert.equal(truncatedNotices[0]?.reason, "SnapshotInvalid");
    assert.match(truncatedNotices[0]!.message, /truncated.*booting instead/);
    await cold.whenReady();
    assert.equal((await probe(cold)).machine, "after-truncation");
    await cold.stop(1000);

    // A stream QEMU cannot load, with a record that matches it: only the restore can tell.
    const again = await s.starter.prepare(spec("unused"));
    const damaged = await readFile(again.stateFile);
    damaged.fill(0x5a, 0, 64);
    await writeFile(again.stateFile, damaged);
    await writeFile(join(again.dir, "snapshot.json"), JSON.stringify({ ...again.record, bytes: damaged.length, sha256: sha256(damaged) }));
    const failedNotices: StartNotice[] = [];
    const fallback = await s.starter.start(spec("after-bad-load"), "snapshot", (n) => void failedNotices.push(n));
    s.started.push(fallback);
    assert.equal(fallback.startedFrom, "boot");
    assert.deepEqual(failedNotices.map((n) => n.reason), ["SnapshotRestoreFailed"]);
    assert.match(failedNotices[0]!.message, /did not restore/);
    await fallback.whenReady();
    assert.equal((await probe(fallback)).machine, "after-bad-load");
    assert.deepEqual(await s.store.list(), [], "the bad snapshot was removed");
  });

  test("a service in snapshot mode scales from zero by restoring, and says so in its machine's events", async (t) => {
    const image = await appImage("test/fixtures/snapshot-probe");
    const { cluster: c, client } = await TestCluster.start(t, { proxy: true });
    await client.create({
      apiVersion: API_VERSION,
      kind: "Service",
      metadata: { name: "probe" },
      spec: { image: image.record.digest, min: 0, max: 2, hosts: ["probe.test"], startMode: "snapshot" },
    });
    const first = await getOnceRouted(c.proxyUrl, "probe.test");
    assert.equal(first.status, 200, first.body);
    const body = JSON.parse(first.body) as Probe;
    const machine = (await client.get("Machine", body.machine))!;
    assert.equal(machine.spec.startMode, "snapshot");
    assert.equal(machine.status.startedFrom, "snapshot");
    const reasons = await machineEventReasons(client, body.machine);
    assert.ok(reasons.includes("SnapshotRestored"), `events: ${reasons.join(", ")}`);
    await waitFor(async () => ((await client.get("Machine", body.machine))?.status.timings?.restoreMs ? true : undefined), 10_000, "restore timings reported", () => c.log());
  });
});

async function machineEventReasons(client: PithClient, machine: string): Promise<string[]> {
  return (await client.events("Machine", machine)).map((e) => e.spec.reason);
}
