import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { withFileLock } from "./file-lock.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pith-lock-"));
});
after(() => rm(dir, { recursive: true, force: true }));

const WORKER = new URL("./file-lock-worker.ts", import.meta.url).pathname;

function contend(lock: string, counter: string, inside: string, rounds: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", WORKER, lock, counter, inside, String(rounds)], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`contender exited ${code ?? signal}: ${stderr.slice(-500)}`));
    });
  });
}

async function race(name: string, staleContent?: string): Promise<void> {
  const lock = join(dir, `${name}.lock`);
  const counter = join(dir, `${name}.count`);
  await writeFile(counter, "0");
  if (staleContent !== undefined) await writeFile(lock, staleContent);
  await Promise.all(Array.from({ length: 5 }, () => contend(lock, counter, join(dir, `${name}.inside`), 12)));
  assert.equal(await readFile(counter, "utf8"), "60", "every increment made while holding the lock survives");
  assert.equal(existsSync(lock), false, "the last holder removed the lock");
  assert.deepEqual((await readdir(dir)).filter((f) => f.startsWith(`${name}.lock.`)), [], "no pending or moved-aside lock files are left");
}

test("processes racing for one lock hold it one at a time", { timeout: 120_000 }, () => race("fresh"));

test("a stale lock found by several processes at once is taken over by one of them at a time", { timeout: 120_000 }, () => race("stale", "999999999 0"));

test("a lock naming a live PID with another start time is a recycled PID's, so it is stale", { timeout: 10_000 }, async () => {
  const lock = join(dir, "recycled.lock");
  await writeFile(lock, `${process.pid} 1`);
  assert.equal(await withFileLock(lock, async () => "held"), "held");
});

test("a live owner's lock is waited for, and taken once it is released", { timeout: 10_000 }, async () => {
  const lock = join(dir, "live.lock");
  let release!: () => void;
  const held = withFileLock(lock, () => new Promise<void>((resolve) => (release = resolve)));
  await new Promise<void>((resolve) => {
    const poll = () => (existsSync(lock) ? resolve() : setImmediate(poll));
    poll();
  });
  let waitedFor: number | undefined;
  const second = withFileLock(lock, async () => "second", (owner) => {
    waitedFor = owner;
    release();
  });
  assert.equal(await second, "second");
  await held;
  assert.equal(waitedFor, process.pid, "the waiter was told who holds the lock");
});
