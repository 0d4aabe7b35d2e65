import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { AgentStateLog, agentStatePath, readAgentState, type AgentState } from "./agent-state.ts";

/** A PITH_HOME of its own for the test, restored and removed afterwards. */
function home(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "pith-agent-state-"));
  const before = process.env.PITH_HOME;
  process.env.PITH_HOME = dir;
  t.after(() => {
    if (before === undefined) delete process.env.PITH_HOME;
    else process.env.PITH_HOME = before;
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** A log and the handles it is the record of, changed together as the agent does. */
function logOf(node: string) {
  const live = new Map<string, number>();
  const log = new AgentStateLog(node, { handles: () => Object.fromEntries([...live].map(([name, pid]) => [name, { pid }])), count: () => live.size });
  return {
    log,
    start(name: string, pid: number) {
      live.set(name, pid);
      log.started(name, pid);
    },
    stop(name: string) {
      live.delete(name);
      log.stopped(name);
    },
  };
}

const lineCount = (node: string) => readFileSync(agentStatePath(node), "utf8").split("\n").filter(Boolean).length;

test("starts and stops are appended, and read back as the running handles", async (t) => {
  home(t);
  const { log, start, stop } = logOf("n1");
  await log.save(); // the first save writes the (empty) log
  start("a", 101);
  start("b", 102);
  await log.save();
  stop("a");
  start("c", 103);
  await log.save();
  assert.deepEqual(await readAgentState("n1"), { node: "n1", machines: { b: { pid: 102 }, c: { pid: 103 } } } satisfies AgentState);
  assert.equal(lineCount("n1"), 4, "one line per start and stop, nothing rewritten");
  assert.equal(statSync(agentStatePath("n1")).mode & 0o777, 0o600, "the handles are the owner's alone");
});

test("saves asked for at once are one write, carrying every change made before it", async (t) => {
  home(t);
  const { log, start } = logOf("n1");
  await log.save();
  const saves = Array.from({ length: 50 }, (_, i) => (start(`m${i}`, 1000 + i), log.save()));
  await Promise.all(saves);
  assert.equal(Object.keys((await readAgentState("n1"))!.machines).length, 50);
});

test("the log is rewritten from the live handles once stale lines outnumber them", async (t) => {
  home(t);
  const { log, start, stop } = logOf("n1");
  await log.save();
  start("kept", 7);
  for (let i = 0; i < 200; i++) {
    start(`m${i}`, 1000 + i);
    stop(`m${i}`);
    await log.save();
  }
  assert.ok(lineCount("n1") <= 64, `bounded by the live handles, not by history: ${lineCount("n1")} lines`);
  assert.deepEqual((await readAgentState("n1"))!.machines, { kept: { pid: 7 } });
});

test("a torn or foreign line loses only itself", async (t) => {
  home(t);
  const { log, start } = logOf("n1");
  await log.save();
  start("a", 101);
  await log.save();
  appendFileSync(agentStatePath("n1"), '{"start":"b","pid":-1}\n{"stop":42}\nnot json\n{"start":"c","pid":10');
  assert.deepEqual((await readAgentState("n1"))!.machines, { a: { pid: 101 } });
});

test("the JSON state of an agent before the log is read, and replaced by the first save", async (t) => {
  const dir = home(t);
  mkdirSync(join(dir, "agent"), { recursive: true });
  const legacy = join(dir, "agent", "n1.json");
  writeFileSync(legacy, JSON.stringify({ node: "n1", machines: { old: { pid: 55 } } }));
  assert.deepEqual((await readAgentState("n1"))!.machines, { old: { pid: 55 } });
  const { log, start } = logOf("n1");
  start("old", 55);
  await log.save();
  assert.throws(() => statSync(legacy), "the legacy file is gone");
  assert.deepEqual((await readAgentState("n1"))!.machines, { old: { pid: 55 } });
  assert.equal(await readAgentState("other"), undefined, "no state for a node that never saved");
});
