import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, truncate, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { FakeHypervisor } from "../hypervisor/fake/fake-hypervisor.ts";
import type { MachineSpec } from "../hypervisor/hypervisor.ts";
import type { ImageRecord } from "../image/image.ts";
import { MachineStarter, type StartNotice } from "./machine-starter.ts";
import { SnapshotStore, snapshotLimitBytes } from "./snapshot-store.ts";

const imageWith = (digest: string, memoryMiB = 64): ImageRecord =>
  ({
    digest,
    name: "web",
    readiness: { kind: "call" },
    capabilities: { listen: [{ port: 8080, protocol: "http" }], egress: [], volumes: [], memoryMiB, vcpus: 1 },
  }) as unknown as ImageRecord;

let dir: string;
let starts: MachineSpec[];
let hypervisor: FakeHypervisor;
let store: SnapshotStore;
let starter: MachineStarter;
let notices: StartNotice[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "pith-starter-"));
  starts = [];
  notices = [];
  hypervisor = new FakeHypervisor({ bootMs: 20 });
  const start = hypervisor.start.bind(hypervisor);
  hypervisor.start = (spec) => {
    starts.push(spec);
    return start(spec);
  };
  store = new SnapshotStore(join(dir, "images"));
  starter = new MachineStarter({ hypervisor, store, scratchDir: join(dir, "scratch"), warmUpRequests: 0 });
});

afterEach(async () => {
  for (const m of await hypervisor.recover()) await m.stop();
  await rm(dir, { recursive: true, force: true });
  delete process.env.PITH_SNAPSHOT_LIMIT;
});

const spec = (id: string, image = imageWith("sha256:aaaa".padEnd(71, "0")), env?: Record<string, string>): MachineSpec => ({
  id,
  image,
  kernel: "/k",
  initrd: "/i",
  stateDir: join(dir, id),
  ...(env ? { env } : {}),
});
const notify = (n: StartNotice): void => void notices.push(n);
const reasons = (): string[] => notices.map((n) => n.reason);

test("boot mode boots and never touches snapshots", async () => {
  const machine = await starter.start(spec("m1"), "boot", notify);
  assert.equal(machine.startedFrom, "boot");
  assert.deepEqual(starts.map((s) => [s.id, s.restoreFrom, s.snapshotSource]), [["m1", undefined, undefined]]);
  assert.deepEqual(await store.list(), []);
});

test("the first snapshot-mode start saves a snapshot from a private source, later ones only restore", async () => {
  const first = await starter.start(spec("m1"), "snapshot", notify);
  assert.equal(first.startedFrom, "snapshot");
  assert.equal(starts.length, 2);
  assert.equal(starts[0]!.snapshotSource, true, "the source boots as a snapshot source");
  assert.notEqual(starts[0]!.id, "m1");
  assert.match(starts[1]!.restoreFrom ?? "", /snapshots\/[0-9a-f]{32}\/state$/);
  assert.deepEqual(reasons(), ["SnapshotCreated", "SnapshotRestored"]);
  assert.equal((await hypervisor.recover()).length, 1, "the source is stopped");

  notices = [];
  const second = await starter.start(spec("m2"), "snapshot", notify);
  assert.equal(second.startedFrom, "snapshot");
  assert.equal(starts.length, 3);
  assert.deepEqual(reasons(), ["SnapshotRestored"]);
  const [saved] = await store.list();
  assert.equal(saved?.record.image.digest, "sha256:aaaa".padEnd(71, "0"));
  assert.ok((saved?.record.bytes ?? 0) > 0);
  // Guest memory is a secret: the state is its owner's alone, whatever wrote it.
  assert.equal((await stat(saved!.stateFile)).mode & 0o777, 0o600);
  assert.equal((await stat(saved!.dir)).mode & 0o777, 0o700);
});

test("machines asking at once share one snapshot source", async () => {
  const machines = await Promise.all(["a", "b", "c"].map((id) => starter.start(spec(id), "snapshot", notify)));
  assert.deepEqual(machines.map((m) => m.startedFrom), ["snapshot", "snapshot", "snapshot"]);
  assert.equal(starts.filter((s) => s.snapshotSource).length, 1);
  assert.equal(reasons().filter((r) => r === "SnapshotCreated").length, 1);
});

test("a changed image, shape or env never restores an older snapshot", async () => {
  await starter.start(spec("m1", imageWith("sha256:aaaa".padEnd(71, "0"))), "snapshot");
  for (const [id, changed] of [
    ["m2", spec("m2", imageWith("sha256:bbbb".padEnd(71, "0")))],
    ["m3", spec("m3", imageWith("sha256:aaaa".padEnd(71, "0"), 128))],
    ["m4", spec("m4", imageWith("sha256:aaaa".padEnd(71, "0")), { GREETING: "hi" })],
  ] as const) {
    const before = starts.length;
    await starter.start(changed, "snapshot");
    const mine = starts.slice(before);
    assert.equal(mine[0]!.snapshotSource, true, `${id}: a new source is booted`);
    assert.notEqual(mine[1]!.restoreFrom, starts[1]!.restoreFrom, `${id}: restored from its own snapshot`);
  }
  assert.equal((await store.list()).length, 4);
});

test("a truncated snapshot is removed and the machine boots, with a warning", async () => {
  await starter.start(spec("m1"), "snapshot");
  const [saved] = await store.list();
  await truncate(saved!.stateFile, 3);
  const machine = await starter.start(spec("m2"), "snapshot", notify);
  assert.equal(machine.startedFrom, "boot");
  assert.deepEqual(reasons(), ["SnapshotInvalid"]);
  assert.equal(notices[0]!.type, "Warning");
  assert.match(notices[0]!.message, /truncated/);
  assert.deepEqual(await store.list(), []);
});

test("a damaged snapshot of the right size is caught by its hash", async () => {
  await starter.start(spec("m1"), "snapshot");
  const [saved] = await store.list();
  const bytes = await readFile(saved!.stateFile);
  const middle = Math.floor(bytes.length / 2);
  bytes.writeUInt8(bytes.readUInt8(middle) ^ 0xff, middle);
  await writeFile(saved!.stateFile, bytes);
  const machine = await starter.start(spec("m2"), "snapshot", notify);
  assert.equal(machine.startedFrom, "boot");
  assert.match(notices[0]!.message, /sha256.*damaged/);
});

test("a snapshot the hypervisor cannot restore is removed and the machine boots", async () => {
  await starter.start(spec("m1"), "snapshot");
  const [saved] = await store.list();
  // Passes the store's checks (the record is made to match) but is not a snapshot of this image.
  const other = JSON.stringify({ magic: "pith-fake-snapshot", image: "sha256:other" });
  await writeFile(saved!.stateFile, other);
  const { sha256 } = await import("../shared/hash.ts");
  const record = { ...saved!.record, bytes: Buffer.byteLength(other), sha256: sha256(other) };
  await writeFile(join(saved!.dir, "snapshot.json"), JSON.stringify(record));
  const machine = await starter.start(spec("m2"), "snapshot", notify);
  assert.equal(machine.startedFrom, "boot");
  assert.deepEqual(reasons(), ["SnapshotRestoreFailed"]);
  assert.match(notices[0]!.message, /did not restore/);
  assert.deepEqual(await store.list(), []);
});

test("a source that cannot be saved leaves no snapshot and the machine boots", async () => {
  const failing = new FakeHypervisor({ failStart: (s) => (s.snapshotSource ? "no room for a source" : undefined) });
  const machine = await new MachineStarter({ hypervisor: failing, store, scratchDir: join(dir, "scratch") }).start(spec("m1"), "snapshot", notify);
  assert.equal(machine.startedFrom, "boot");
  assert.deepEqual(reasons(), ["SnapshotFailed"]);
  await machine.stop();
});

test("the size limit evicts the least recently used snapshots, never the one just saved", async () => {
  await starter.start(spec("m1", imageWith("sha256:0001".padEnd(71, "0"))), "snapshot");
  await starter.start(spec("m2", imageWith("sha256:0002".padEnd(71, "0"))), "snapshot");
  // Uses a minute and half a minute ago, set rather than waited for: two saves in a row may get
  // the same mtime (the store's record of a use) on a coarse or busy clock.
  for (const [digest, agoMs] of [
    ["sha256:0001".padEnd(71, "0"), 60_000],
    ["sha256:0002".padEnd(71, "0"), 30_000],
  ] as const) {
    const snapshot = (await store.list()).find((s) => s.record.image.digest === digest)!;
    const at = new Date(Date.now() - agoMs);
    await utimes(join(snapshot.dir, "snapshot.json"), at, at);
  }
  assert.deepEqual((await store.list()).map((s) => s.record.image.digest), ["sha256:0002".padEnd(71, "0"), "sha256:0001".padEnd(71, "0")], "0001 is the least recently used");
  const each = (await store.list())[0]!.record.bytes;
  process.env.PITH_SNAPSHOT_LIMIT = String(each * 2);
  await starter.start(spec("m3", imageWith("sha256:0001".padEnd(71, "0"))), "snapshot"); // a use: 0001 is now newest
  await starter.start(spec("m4", imageWith("sha256:0003".padEnd(71, "0"))), "snapshot");
  assert.deepEqual((await store.list()).map((s) => s.record.image.digest).sort(), ["sha256:0001".padEnd(71, "0"), "sha256:0003".padEnd(71, "0")]);
});

test("PITH_SNAPSHOT_LIMIT takes bytes or K/M/G, and says what is wrong otherwise", () => {
  assert.equal(snapshotLimitBytes("1048576"), 1048576);
  assert.equal(snapshotLimitBytes("2G"), 2 * 1024 ** 3);
  assert.equal(snapshotLimitBytes("512M"), 512 * 1024 ** 2);
  assert.equal(snapshotLimitBytes(undefined), 4 * 1024 ** 3);
  assert.throws(() => snapshotLimitBytes("lots"), /not a size/);
});

test("an image with volumes never starts from a snapshot: a clear error, no snapshot made, nothing booted", async () => {
  let started = 0;
  const hypervisor = { name: "counting", start: async () => { started++; throw new Error("must not start"); }, recover: async () => [], snapshotTag: async () => "t" };
  const starter = new MachineStarter({ hypervisor: hypervisor as never, store, scratchDir: join(dir, "scratch") });
  const withVolumes = { name: "db", digest: "sha256:d", capabilities: { listen: [], egress: [], volumes: [{ name: "data", mount: "/data", sizeMiB: 64 }], memoryMiB: 64, vcpus: 1 } };
  const spec = { id: "m", image: withVolumes, kernel: "k", initrd: "i", stateDir: "/nonexistent" } as never;
  await assert.rejects(starter.start(spec, "snapshot"), /SNAPSHOT_WITH_VOLUMES|cannot start from a snapshot/);
  await assert.rejects(starter.prepare(spec), /cannot start from a snapshot/);
  assert.equal(started, 0);
});
