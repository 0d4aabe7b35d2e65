import assert from "node:assert/strict";
import { appendFileSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { until } from "../../proxy/test-support.ts";
import { CONSOLE_LIMITS, type ConsoleLimits } from "./console-log.ts";
import { CONTROL_LIMITS, type ControlLimits } from "./control-channel.ts";
import { QemuMachine } from "./qemu-machine.ts";
import type { BootTimings } from "../hypervisor.ts";
import type { VmProcess } from "./vm-process.ts";

/**
 * A QemuMachine whose "QEMU" is a stand-in process and whose guest is the test, on the other end
 * of a real unix socket: what a misbehaving guest can do to the host, without booting one.
 */
interface Rig {
  machine: QemuMachine;
  guest: Promise<Socket>;
  consoleLog: string;
  killed: NodeJS.Signals[];
  /** What the host sent to the guest. */
  received: () => string;
}

/** How the rig's machine started: booted (the default: config once init reports) or restored (config at attach). */
interface RigStart {
  restored?: boolean;
  config?: () => string[];
}

async function rig(t: TestContext, limits: { control?: ControlLimits; console?: ConsoleLimits } = {}, start: RigStart = {}): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), "pith-limits-"));
  const controlSocket = join(dir, "control.sock");
  const consoleLog = join(dir, "console.log");
  writeFileSync(consoleLog, "");
  let received = "";
  let connected!: (s: Socket) => void;
  const guest = new Promise<Socket>((resolve) => (connected = resolve));
  const server: Server = createServer((socket) => {
    socket.on("data", (d) => (received += d.toString()));
    socket.on("error", () => {});
    connected(socket);
  });
  await new Promise<void>((resolve) => server.listen(controlSocket, resolve));
  const killed: NodeJS.Signals[] = [];
  let end!: (e: { status: number | null; signal: NodeJS.Signals | null }) => void;
  const exited = new Promise<{ status: number | null; signal: NodeJS.Signals | null }>((resolve) => (end = resolve));
  const process: VmProcess = {
    pid: 999_999,
    adopted: false,
    exited,
    isRunning: () => killed.length === 0,
    kill: (signal) => {
      killed.push(signal);
      end({ status: null, signal });
    },
  };
  const machine = new QemuMachine({
    machineId: "m1",
    accelerator: "tcg",
    process,
    ports: [],
    consoleLog,
    controlSocket,
    qmpSocket: join(dir, "qmp.sock"),
    config: start.config ?? (() => ["time 1", "env A=b", "end"]),
    ...(start.restored ? { restored: true } : {}),
    readyTimeoutMs: 30_000,
    requestedAt: performance.now(),
    limits,
  });
  t.after(() => {
    if (killed.length === 0) process.kill("SIGKILL");
    server.close();
    server.unref();
    rmSync(dir, { recursive: true, force: true });
  });
  assert.equal(await machine.attach(), true);
  return { machine, guest, consoleLog, killed, received: () => received };
}

test("a well-behaved guest gets its config and becomes ready", async (t) => {
  const { machine, guest, received } = await rig(t);
  const socket = await guest;
  socket.write("init 1000\nstart 2000\n");
  await until(() => received().includes("end\n"), 5000, "the config");
  assert.equal(received(), "time 1\nenv A=b\nend\n");
  socket.write("ready\n");
  await machine.whenReady();
  assert.equal(machine.exit, undefined);
});

test("a restored guest that asks for its clock gets it once, anchored to the uptime it gave and set off as its first time was", async (t) => {
  const offsetMs = -2 * 60 * 60 * 1000;
  const { machine, guest, received } = await rig(t, {}, { restored: true, config: () => [`time ${Date.now() + offsetMs}`, "restored"] });
  const socket = await guest;
  await until(() => received().endsWith("restored\n"), 5000, "the restore's config");
  const askedAt = Date.now();
  socket.write("clock 5000000\nclock 6000000\n");
  await until(() => / 5000000\n/.test(received()), 5000, "the anchored time");
  const [, unixMs] = /\ntime (\d+) 5000000\n/.exec(received()) ?? [];
  assert.ok(Math.abs(Number(unixMs) - (askedAt + offsetMs)) < 1000, `the host's time at the question, set off as before: ${unixMs}`);
  // Messages are handled in order: once ready is seen, the second question was too, unanswered.
  socket.write("ready\n");
  await machine.whenReady();
  assert.doesNotMatch(received(), / 6000000\n/, "one answer per time the host sent");
});

test("a restored guest that reports ready before QEMU answers cont still reports its restore time", async (t) => {
  const { machine, guest, received } = await rig(t, {}, { restored: true, config: () => ["restored"] });
  const socket = await guest;
  await until(() => received().endsWith("restored\n"), 5000, "the restore's config");
  let answerCont!: () => void;
  const contAnswered = new Promise<void>((resolve) => (answerCont = resolve));
  const resumed = machine.resume({ execute: <T>() => contAnswered as Promise<T> }, performance.now() - 40);
  socket.write("ready\n");
  let readyTimings: BootTimings | undefined;
  void machine.whenReady().then((timings) => (readyTimings = timings));
  await until(() => machine.timings.readyMs !== undefined, 5000, "the guest's ready read");
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(readyTimings, undefined, "readiness waits for cont's answer");
  answerCont();
  await resumed;
  const timings = await machine.whenReady();
  assert.ok((timings.restoreMs ?? 0) >= 40, `restoreMs in the timings ready resolved with: ${JSON.stringify(timings)}`);
});

test("a booted guest, whose time was anchored, asking for its clock gets nothing", async (t) => {
  const { machine, guest, received } = await rig(t);
  const socket = await guest;
  socket.write("init 1000\n");
  await until(() => received().includes("end\n"), 5000, "the config");
  socket.write("clock 5000000\nready\n");
  await machine.whenReady();
  assert.equal(received(), "time 1\nenv A=b\nend\n");
});

test("a control line over the limit fails the machine with ControlChannelAbuse, unbuffered", async (t) => {
  const { machine, guest, killed } = await rig(t);
  // No newline ever: the host must not wait for one to decide.
  (await guest).write("x".repeat(CONTROL_LIMITS.lineBytes + 1));
  const exit = await machine.whenExited();
  assert.match(exit.reason, /^ControlChannelAbuse: the guest sent a control line over 4096 bytes$/);
  assert.deepEqual(killed, ["SIGKILL"]);
  await assert.rejects(machine.whenReady(), /ControlChannelAbuse/);
});

test("init's report of an app flooding its own pipe fails the machine with ControlChannelAbuse", async (t) => {
  const { machine, guest, killed } = await rig(t);
  (await guest).write("abuse the app wrote 65 lines that are not messages (3 of them over 8192 bytes) to its control pipe\n");
  const exit = await machine.whenExited();
  assert.match(exit.reason, /^ControlChannelAbuse: the app wrote 65 lines that are not messages/);
  assert.deepEqual(killed, ["SIGKILL"]);
});

test("a line at the limit is still read", async (t) => {
  const { machine, guest } = await rig(t);
  const socket = await guest;
  socket.write(`ready${" ".repeat(CONTROL_LIMITS.lineBytes - 5)}\n`);
  await machine.whenReady();
  assert.equal(machine.exit, undefined);
});

test("too many lines that are not messages fail the machine", async (t) => {
  const { machine, guest } = await rig(t, { control: { ...CONTROL_LIMITS, unknownLines: 5 } });
  const socket = await guest;
  socket.write("hello\n".repeat(5));
  socket.write("ready\n");
  await machine.whenReady(); // five unknown lines are tolerated
  socket.write("\u0000\u00ff garbage\n");
  const exit = await machine.whenExited();
  assert.match(exit.reason, /^ControlChannelAbuse: the guest sent more than 5 control lines that are not messages$/);
});

test("lines faster than the rate fail the machine", async (t) => {
  const { machine, guest } = await rig(t, { control: { ...CONTROL_LIMITS, linesPerWindow: 10, rateWindowMs: 60_000 } });
  (await guest).write("status ready\n".repeat(11));
  const exit = await machine.whenExited();
  assert.match(exit.reason, /^ControlChannelAbuse: the guest sent more than 10 control lines within 60000 ms$/);
});

test("a console written faster than the flood rate fails the machine with ConsoleFlood", async (t) => {
  const limits = { ...CONSOLE_LIMITS, capBytes: 4096, floodBytes: 64 * 1024, floodWindowMs: 5000, pollMs: 10 };
  const { machine, consoleLog } = await rig(t, { console: limits });
  appendFileSync(consoleLog, "boot\n");
  // Written in pieces, as a guest would, so rotation and flood counting interleave; bounded, so
  // a host that never notices fails the test instead of filling the disk.
  let written = 0;
  while (!machine.exit && written < 4 * 1024 * 1024) {
    appendFileSync(consoleLog, "y".repeat(4000));
    written += 4000;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const exit = await machine.whenExited();
  assert.match(exit.reason, /^ConsoleFlood: the guest wrote \d+ bytes to its console within 5 s \(at most 65536\)$/);
  assert.ok(written < 1024 * 1024, `noticed only after ${written} bytes`);
  assert.ok(existsSync(`${consoleLog}.1`), "rotated meanwhile");
});

test("a console past its cap is rotated to console.log.1, and QEMU's appends carry on in console.log", async (t) => {
  const limits = { ...CONSOLE_LIMITS, capBytes: 1024, pollMs: 10 };
  const { machine, consoleLog } = await rig(t, { console: limits });
  appendFileSync(consoleLog, "a".repeat(1500));
  await until(() => existsSync(`${consoleLog}.1`) && statSync(consoleLog).size === 0, 5000, "the rotation");
  assert.equal(statSync(`${consoleLog}.1`).size, 1500);
  appendFileSync(consoleLog, "after\n");
  assert.equal(statSync(consoleLog).size, 6);
  assert.equal(machine.exit, undefined);
});
