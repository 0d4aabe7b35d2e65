import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { until } from "../proxy/test-support.ts";

/** A node with tsx starts in well under a second; this is for a loaded host. */
const WAIT_MS = 20_000;
const LIBRARY = fileURLToPath(new URL("./index.ts", import.meta.url));

/**
 * An app that uses the guest library, in a node of its own with init's two pipes as fds 3 (to
 * init) and 4 (from init). It makes garbage first, so that V8's young generation holds some,
 * counts its onRestore hooks, and answers `report` on stdin with what the test checks.
 */
const APP = `
import { createRequire } from "node:module";
import { getHeapSpaceStatistics } from "node:v8";
import { config, onRestore } from ${JSON.stringify(LIBRARY)};
const require = createRequire(import.meta.url);
const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_used_size;
// Garbage until the young generation holds at least 512 KiB (a scavenge on the way starts it over).
let keep = 0;
for (let i = 0; newSpace() < 512 * 1024 && i < 1_000_000; i++) keep += JSON.stringify({ i, padding: "x".repeat(64) }).length;
const garbageAtStart = newSpace();
let hooks = 0;
onRestore(() => void hooks++);
process.stdin.setEncoding("utf8");
process.stdin.on("data", () => {
  const newSpaceNow = newSpace(); // before this handler allocates
  require("node:zlib"); // a builtin module first loaded now: compiled with node's code cache, or not
  const usage = require("internal/test/binding").internalBinding("builtins").getCacheUsage();
  process.stdout.write(JSON.stringify({ hooks, machine: config().machineId, garbageAtStart, newSpaceNow, compiledWithoutCache: [...usage.compiledWithoutCache], keep }) + "\\n");
});
`;

interface Report {
  hooks: number;
  machine: string;
  garbageAtStart: number;
  newSpaceNow: number;
  compiledWithoutCache: string[];
}

interface App {
  child: ChildProcess;
  /** Lines the app sent to init, as they come. */
  toInit: string[];
  stderr: () => string;
  notify(lines: string[]): void;
  report(): Promise<Report>;
}

async function startApp(t: TestContext): Promise<App> {
  const dir = mkdtempSync(join(tmpdir(), "pith-guest-lib-"));
  const script = join(dir, "app.mts");
  writeFileSync(script, APP);
  const child = spawn(process.execPath, ["--expose-internals", "--no-warnings", "--import", "tsx", script], {
    stdio: ["pipe", "pipe", "pipe", "pipe", "pipe"],
    env: { ...process.env, PITH_CONTROL_FD: "3", PITH_NOTICE_FD: "4", PITH_MACHINE_ID: "source" },
  });
  t.after(() => {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  const toInit: string[] = [];
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  (child.stdio[3] as Readable).on("data", (d: Buffer) => toInit.push(...d.toString().split("\n").filter(Boolean)));
  const stdout = child.stdout!;
  const report = (): Promise<Report> =>
    new Promise((resolve, reject) => {
      stdout.once("data", (d: Buffer) => resolve(JSON.parse(d.toString()) as Report));
      child.once("exit", (code) => reject(new Error(`the app exited (${code}): ${stderr}`)));
      child.stdin!.write("report\n");
    });
  await until(() => toInit.includes("restore-aware"), WAIT_MS, () => `the app to say it is restore-aware (stderr: ${stderr})`);
  return { child, toInit, stderr: () => stderr, notify: (lines) => (child.stdio[4] as Writable).write(lines.map((l) => `${l}\n`).join("")), report };
}

test("a rehearsal (a notice that changes nothing) runs no hook and empties the young generation, and node's code cache still serves", async (t) => {
  const app = await startApp(t);
  app.notify(["env PITH_MACHINE_ID=source", "restored"]);
  await until(() => app.toInit.includes("restored"), WAIT_MS, () => `the answer (stderr: ${app.stderr()})`);
  const report = await app.report();
  assert.equal(report.hooks, 0, "a rehearsal is no restore: no hook");
  assert.equal(report.machine, "source");
  assert.match(app.stderr(), /pith-guest: rehearsed a restore in [\d.]+ ms \(env [\d.]+ ms, scavenge [\d.]+ ms\)/);
  assert.ok(report.garbageAtStart >= 512 * 1024, `the app made garbage first (${report.garbageAtStart} bytes in the young generation)`);
  t.diagnostic(`young generation: ${report.garbageAtStart} bytes before the rehearsal, ${report.newSpaceNow} after`);
  // Without a scavenge it only grows; its survivors (the app's live young objects) stay.
  assert.ok(report.newSpaceNow < report.garbageAtStart - 256 * 1024, `the young generation was emptied: ${report.garbageAtStart} -> ${report.newSpaceNow} bytes`);
  assert.deepEqual(report.compiledWithoutCache, [], "the V8 flag set for the scavenge was set back: builtins loaded later still use node's code cache");
});

test("a restore with a new identity runs the hooks, with the new env, and no scavenge", async (t) => {
  const app = await startApp(t);
  app.notify(["env PITH_MACHINE_ID=restored-1", "restored"]);
  await until(() => app.toInit.includes("restored"), WAIT_MS, () => `the answer (stderr: ${app.stderr()})`);
  const report = await app.report();
  assert.equal(report.hooks, 1);
  assert.equal(report.machine, "restored-1");
  assert.match(app.stderr(), /pith-guest: restored in [\d.]+ ms \(env [\d.]+ ms, hooks [\d.]+ ms\)/);
  assert.doesNotMatch(app.stderr(), /scavenge/);
});
