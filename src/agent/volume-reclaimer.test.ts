import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { startTestServer } from "../api/test-support.ts";
import { PithClient } from "../client/index.ts";
import type { Machine } from "../model/kinds.ts";
import { API_VERSION } from "../model/resource.ts";
import { VolumeClaims } from "../volume/volume-claims.ts";
import { volumeFilePath } from "../volume/volume-file.ts";
import { attachVolumes } from "./volume-attachments.ts";
import { VolumeReclaimer } from "./volume-reclaimer.ts";

const volume = (name: string, node: string) => ({ apiVersion: API_VERSION as typeof API_VERSION, kind: "Volume" as const, metadata: { name }, spec: { sizeMiB: 16, node } });

async function world(t: TestContext) {
  const home = await mkdtemp(join(tmpdir(), "pith-reclaim-"));
  process.env.PITH_HOME = home;
  const server = await startTestServer();
  const client = new PithClient({ server: server.url, token: server.token });
  const claims = new VolumeClaims(join(home, "claims"));
  const lines: string[] = [];
  const abort = new AbortController();
  t.after(async () => {
    abort.abort();
    await server.close();
    await rm(home, { recursive: true, force: true });
  });
  /** A volume file with something in it, as a machine would have left it. */
  const file = async (name: string): Promise<string> => {
    const path = volumeFilePath(name);
    await mkdir(join(home, "volumes"), { recursive: true });
    await writeFile(path, `data of ${name}`);
    return path;
  };
  const waiters = new Set<() => void>();
  const log = (line: string) => {
    lines.push(line);
    for (const wake of waiters) wake();
  };
  /** The first log line matching `pattern`, as soon as it is written. */
  const logged = (pattern: RegExp, timeoutMs = 10_000) =>
    new Promise<string>((resolve, reject) => {
      const look = () => {
        const line = lines.find((l) => pattern.test(l));
        if (!line) return;
        waiters.delete(look);
        clearTimeout(timer);
        resolve(line);
      };
      const timer = setTimeout(() => {
        waiters.delete(look);
        reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms; got:\n${lines.join("\n")}`));
      }, timeoutMs);
      waiters.add(look);
      look();
    });
  const reclaimer = new VolumeReclaimer(client, "n1", log, claims);
  return { client, claims, file, logged, start: () => reclaimer.start(abort.signal), reclaimer, lines };
}

test("deleting a Volume removes its file on its node; other nodes' and live Volumes' files stay", async (t) => {
  const w = await world(t);
  await w.client.create(volume("mine", "n1"));
  await w.client.create(volume("theirs", "n2"));
  await w.client.create(volume("kept", "n1"));
  const mine = await w.file("mine");
  const theirs = await w.file("theirs");
  const kept = await w.file("kept");
  w.start();
  await w.client.delete("Volume", "theirs");
  await w.client.delete("Volume", "mine");
  await w.logged(/volume mine: deleted, its file .* removed/);
  assert.equal(existsSync(mine), false, "the deleted Volume's data is gone");
  assert.equal(await readFile(theirs, "utf8"), "data of theirs", "another node's Volume is not this node's to remove");
  assert.equal(await readFile(kept, "utf8"), "data of kept");
  assert.equal(w.lines.some((l) => l.includes("theirs")), false);
});

test("a file is kept while a machine on this host claims it, or once a Volume of that name exists again", async (t) => {
  const w = await world(t);
  const held = await w.file("held");
  await w.claims.claim("pith/held-machine", held);
  assert.match((await w.reclaimer.reclaim("held")) ?? "", /machine pith\/held-machine on this host still claims it/);
  assert.equal(await readFile(held, "utf8"), "data of held");

  await w.client.create(volume("again", "n1"));
  const again = await w.file("again");
  assert.match((await w.reclaimer.reclaim("again")) ?? "", /a Volume of that name exists again/);
  assert.equal(await readFile(again, "utf8"), "data of again");
});

test("files no Volume names are reported at start, not removed", async (t) => {
  const w = await world(t);
  await w.client.create(volume("named", "n1"));
  const orphan = await w.file("orphan");
  await w.file("named");
  w.start();
  const line = await w.logged(/volume files without a Volume object/);
  assert.match(line, /orphan/);
  assert.doesNotMatch(line, /named/);
  assert.equal(await readFile(orphan, "utf8"), "data of orphan");
});

test("attach never hands a new Volume the file an earlier Volume of that name left behind", async (t) => {
  const w = await world(t);
  const stale = await w.file("reused");
  await w.client.create(volume("reused", "n1"));
  const machine = { apiVersion: API_VERSION, kind: "Machine", metadata: { name: "m1" }, spec: { image: "sha256:abc", memoryMiB: 64, vcpus: 1, desiredState: "running", node: "n1", volumes: [{ name: "data", volume: "reused" }] } };
  await w.client.create(machine as never);
  const lines: string[] = [];
  const [attached] = await attachVolumes(w.client, "n1", (await w.client.get("Machine", "m1")) as Machine, (l) => lines.push(l));
  assert.equal(attached?.path, stale);
  assert.doesNotMatch(await readFile(stale, "latin1"), /data of reused/, "a fresh filesystem, not the old owner's bytes");
  assert.match(lines.join("\n"), /removed a file left by an earlier Volume of that name/);
  const object = await w.client.get("Volume", "reused");
  assert.equal(object?.status.created, true);
  assert.equal(object?.status.attachedTo, "m1");

  // Its own file, made by it, is kept at the next attach.
  await writeFile(stale, "written by m1");
  await attachVolumes(w.client, "n1", (await w.client.get("Machine", "m1")) as Machine);
  assert.equal(await readFile(stale, "utf8"), "written by m1");
});
