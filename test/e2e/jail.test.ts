import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { DEFAULT_UID_RANGE } from "../../src/jail/uid-pool.ts";
import { appImage } from "../support/images.ts";
import { httpGet, missingForMachines, startMachine } from "../support/machines.ts";

const asRoot = process.getuid?.() === 0;
const cgroupV1 = existsSync("/sys/fs/cgroup/memory/cgroup.procs");
const skip = missingForMachines() ?? (asRoot ? undefined : "the full jail (own uid, cgroups) needs root");

const status = (pid: number): string => readFileSync(`/proc/${pid}/status`, "utf8");
const field = (pid: number, name: string): string | undefined => new RegExp(`^${name}:[ \\t]*(.*)$`, "m").exec(status(pid))?.[1];

/** The directories of a machine's cgroup, from its QEMU's /proc/PID/cgroup (v1 hierarchies). */
function v1CgroupDir(pid: number, controller: string): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((l) => l.split(":")[1]?.split(",").includes(controller));
  assert.ok(line, `QEMU is in a ${controller} cgroup`);
  const mount = ["memory", "pids"].includes(controller) ? controller : existsSync("/sys/fs/cgroup/cpu,cpuacct") ? "cpu,cpuacct" : "cpu";
  return join("/sys/fs/cgroup", mount, line.split(":").slice(2).join(":"));
}

describe("every machine's VMM is jailed", { skip, timeout: 600_000 }, () => {
  test("QEMU runs as a uid of its own, under seccomp, in a private read-only root and its own cgroup", async (t) => {
    execFileSync("make", ["-s", "-C", "examples/static-c"]);
    const image = await appImage("examples/static-c");
    const machine = await startMachine(t, image);
    await machine.whenReady();
    const pid = machine.pid;

    const uid = Number(field(pid, "Uid")?.split(/\s+/)[0]);
    assert.notEqual(uid, 0, "QEMU is not root");
    assert.ok(uid >= DEFAULT_UID_RANGE.first && uid < DEFAULT_UID_RANGE.first + DEFAULT_UID_RANGE.count, `uid ${uid} is from Pith's range`);
    assert.deepEqual(field(pid, "Uid")?.split(/\s+/), [String(uid), String(uid), String(uid), String(uid)], "real, effective, saved and fs uid all dropped");
    assert.equal(field(pid, "Groups")?.trim() ?? "", "", "no supplementary groups");
    assert.equal(field(pid, "Seccomp"), "2", "a seccomp filter is installed");
    assert.equal(field(pid, "NoNewPrivs"), "1");
    assert.equal(machine.jail?.uid, uid, "the machine reports its uid");
    assert.equal(machine.jail?.seccomp, true);

    // Its root is a read-only tmpfs holding /usr, its state and its image's boot files, nothing else.
    const rootMount = readFileSync(`/proc/${pid}/mountinfo`, "utf8").split("\n").find((l) => l.split(" ")[4] === "/");
    assert.match(rootMount ?? "", / \/ ro,.* - tmpfs /, "the root is a read-only tmpfs");
    const top = readdirSync(`/proc/${pid}/root`).sort();
    assert.ok(top.includes("usr"), `sees /usr: ${top}`);
    for (const hostOnly of ["etc", "home", "var", "proc", "sys", "boot"]) assert.ok(!top.includes(hostOnly), `does not see /${hostOnly}: ${top}`);
    assert.ok(existsSync(`/proc/${pid}/root${machine.consoleLog}`), "sees its console");
    assert.equal(machine.jail?.mountNamespace, true);

    // Limits: file descriptors, file size (its console), no core dumps of guest memory.
    const limits = readFileSync(`/proc/${pid}/limits`, "utf8");
    assert.match(limits, /Max open files\s+1024\s+1024/);
    assert.match(limits, /Max file size\s+67108864\s+67108864/);
    assert.match(limits, /Max core file size\s+0\s+0/);

    if (cgroupV1) {
      const memory = v1CgroupDir(pid, "memory");
      const expected = machine.jail?.limits;
      assert.ok(expected, "the machine reports its cgroup limits");
      assert.equal(Number(readFileSync(join(memory, "memory.limit_in_bytes"), "utf8")), expected.memoryBytes);
      assert.equal(expected.memoryBytes, (64 + 384) * 1024 * 1024, "guest memory plus the stated TCG overhead");
      assert.equal(readFileSync(join(v1CgroupDir(pid, "pids"), "pids.max"), "utf8").trim(), String(expected.pids));
      assert.equal(Number(readFileSync(join(v1CgroupDir(pid, "cpu"), "cpu.cfs_quota_us"), "utf8")), Math.round(expected.cpus * 100_000));
      assert.ok(machine.jail?.cgroup?.endsWith(`/pith/${machine.id}.${uid}`), `cgroup ${machine.jail?.cgroup}`);
    }
    const pidsDir = cgroupV1 ? v1CgroupDir(pid, "pids") : "";
    assert.equal((await httpGet(machine.ports[0]!.url)).status, 200, "and it still serves");

    const exit = await machine.stop(5000);
    assert.equal(exit.code, 0, exit.reason);
    if (cgroupV1) assert.ok(!existsSync(pidsDir), "its cgroup is removed when it is gone");
    const claim = join("/run/pith/uids", String(uid));
    assert.ok(!existsSync(claim) || readFileSync(claim, "utf8").trim() !== `test/${machine.id}`, "its uid is given back");
  });

  test("a machine whose QEMU exceeds its memory is killed by its own cgroup, with that reason", { skip: cgroupV1 ? undefined : "checked on cgroup v1 hosts" }, async (t) => {
    execFileSync("make", ["-s", "-C", "test/fixtures/memory-hog"]);
    const image = await appImage("test/fixtures/memory-hog");
    const machine = await startMachine(t, image);
    await machine.whenReady();
    const memory = v1CgroupDir(machine.pid, "memory");
    // Tighten the limit to what QEMU uses now plus a little: the guest's next 32 MiB cannot fit.
    const usage = Number(readFileSync(join(memory, "memory.usage_in_bytes"), "utf8"));
    const limit = usage + 16 * 1024 * 1024;
    writeFileSync(join(memory, "memory.limit_in_bytes"), String(limit));
    if (existsSync(join(memory, "memory.memsw.limit_in_bytes"))) writeFileSync(join(memory, "memory.memsw.limit_in_bytes"), String(limit));
    for (let i = 0; i < 8 && !machine.exit; i++) await httpGet(machine.ports[0]!.url, 20_000).catch(() => undefined);
    const exit = await machine.whenExited();
    // The reason comes from the machine's own cgroup's OOM-kill count: its limit, not the host's memory, ended it.
    assert.match(exit.reason, /killed by its own cgroup .*more memory than its limit/);
  });
});
