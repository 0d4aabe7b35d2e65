import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { freeLoopbackPort } from "../../src/shared/free-port.ts";
import { kernelCacheDir, pithRoot } from "../../src/shared/paths.ts";
import { get } from "../support/load.ts";
import { missingForMachines } from "../support/machines.ts";
import { until } from "../support/until.ts";

/** An ordinary user to run Pith as: the test switches to it, so the test itself must be root. */
const NOBODY = 65534;
const asUser = [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups"];
const PITH = join(pithRoot(), "bin/pith.js");
const skip =
  missingForMachines() ??
  (process.getuid?.() !== 0 ? "switching to an ordinary user needs root" : !existsSync("/usr/bin/setpriv") ? "needs setpriv (util-linux)" : undefined);

describe("pith run as an ordinary user", { skip, timeout: 300_000 }, () => {
  test("runs the machine with the parts of the jail a user can have, and says which are missing", async (t) => {
    const home = userHome(t);
    const child = spawn("setpriv", [...asUser, process.execPath, PITH, "run", "examples/static-c", "--no-console"], {
      cwd: pithRoot(),
      env: userEnv(home),
      detached: true,
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    t.after(() => {
      // pith run, and the QEMU it started in its own process group, even when the test failed.
      for (const group of [child.pid!, Number(/started \(pid (\d+)/.exec(output)?.[1])]) {
        try {
          if (group > 0) process.kill(-group, "SIGKILL");
        } catch {
          // already gone
        }
      }
    });
    const url = await until("pith run prints the machine's URL", () => /-> (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)?.[1], {
      timeoutMs: 120_000,
      everyMs: 50,
      context: () => `output so far:\n${output}`,
    });

    assert.match(output, /machines run with part of the jail missing:\n\s+- uid: Pith is not running as root/, "it says what is missing, once");
    assert.match(output, /- cgroup: only root may create cgroups/);
    assert.equal(output.match(/part of the jail missing/g)?.length, 1);
    const pid = Number(/started \(pid (\d+)/.exec(output)?.[1]);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    assert.match(status, /^Uid:\s+65534\s/m, "QEMU runs as the user");
    assert.match(status, /^Seccomp:\s+2$/m, "under QEMU's seccomp filter");
    assert.notEqual(readFileSync(`/proc/${pid}/mountinfo`, "utf8"), readFileSync("/proc/self/mountinfo", "utf8"), "in a mount namespace of its own (a user namespace's)");
    const answer = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    assert.equal(answer.status, 200);
    await answer.text();

    process.kill(child.pid!, "SIGTERM");
    assert.equal(await exited, 0, output);
  });
});

describe("pith up as an ordinary user", { skip, timeout: 400_000 }, () => {
  test("serves a service through its proxy, with the parts of the jail a user can have, and its node says which are missing", async (t) => {
    let cleanUp = (): void => {};
    const home = userHome(t, () => cleanUp());
    const [apiPort, proxyPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
    const env = { ...userEnv(home), PITH_SERVER: `http://127.0.0.1:${apiPort}` };
    const up = spawn("setpriv", [...asUser, process.execPath, PITH, "up", "--port", String(apiPort), "--proxy-port", String(proxyPort), "--node", "user-node"], {
      cwd: pithRoot(),
      env,
      detached: true,
    });
    let output = "";
    up.stdout.on("data", (d: Buffer) => (output += d.toString()));
    up.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => up.once("exit", resolve));
    const pith = (...args: string[]): string =>
      execFileSync("setpriv", [...asUser, process.execPath, PITH, ...args], { cwd: pithRoot(), env, encoding: "utf8", timeout: 120_000 });
    cleanUp = () => {
      // pith up first, then the machines it leaves running by design, and their network helpers,
      // found by the node's name in their command lines (whatever became of their files).
      killGroup(up.pid!);
      for (const pattern of ["pith:agent\\.user-node/", "--machine agent\\.user-node/"]) {
        const found = spawnSync("pgrep", ["-u", String(NOBODY), "-f", "--", pattern], { encoding: "utf8" }).stdout;
        for (const pid of found.split("\n").filter(Boolean).map(Number)) killGroup(pid);
      }
    };
    const outputSoFar = (): string => `output so far:\n${output}`;
    await until("pith up answers /healthz", async () => (await fetch(`http://127.0.0.1:${apiPort}/healthz`).catch(() => undefined))?.ok, { timeoutMs: 60_000, everyMs: 50, context: outputSoFar });

    const manifest = join(home, "service.yaml");
    writeFileSync(manifest, `apiVersion: pith.dev/v1\nkind: Service\nmetadata:\n  name: user-static\nspec:\n  app: ${join(pithRoot(), "examples/static-c")}\n  replicas: 1\n`);
    chownSync(manifest, NOBODY, NOBODY);
    pith("apply", "-f", manifest);
    const body = await until(
      "the service answers through pith up's proxy",
      async () => {
        const answer = await get(`http://127.0.0.1:${proxyPort}/`, "user-static.localhost", undefined, 5_000).catch(() => undefined);
        return answer?.status === 200 ? answer.body : undefined;
      },
      { timeoutMs: 240_000, everyMs: 50, context: () => `${outputSoFar()}\n${pith("get", "machines", "-o", "wide")}` },
    );
    assert.ok(body.length > 0, "the machine answered through pith up's proxy");

    assert.match(output, /machines run with part of the jail missing:\n\s+- uid: Pith is not running as root/, "it says what is missing at start");
    assert.equal(output.match(/part of the jail missing/g)?.length, 1, "once");
    const nodes = pith("get", "nodes", "-o", "wide");
    assert.match(nodes, /user-node .* without uid,cgroup/, "its node says which parts of the jail its machines go without");
    const [pid] = machinePids(home);
    assert.ok(pid, "the machine's QEMU is found");
    assert.match(readFileSync(`/proc/${pid}/status`, "utf8"), /^Uid:\s+65534\s/m, "QEMU runs as the user");

    process.kill(up.pid!, "SIGTERM");
    assert.equal(await exited, 0, output);
  });
});

/** The ordinary user's own PITH_HOME, with root's cached kernels copied in so nothing is compiled. */
function userHome(t: { after(fn: () => void): void }, cleanUp: () => void = () => {}): string {
  execFileSync("make", ["-s", "-C", join(pithRoot(), "examples/static-c")]);
  const home = mkdtempSync(join(tmpdir(), "pith-user-"));
  // The caller's clean-up (its processes) before the files they run from are removed.
  t.after(() => {
    try {
      cleanUp();
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
  mkdirSync(join(home, "kernel"));
  for (const entry of readdirSync(kernelCacheDir())) {
    if (entry === "src" || entry === "build" || entry === "ccache" || entry.endsWith(".lock")) continue;
    cpSync(join(kernelCacheDir(), entry), join(home, "kernel", entry), { recursive: true });
  }
  execFileSync("chown", ["-R", `${NOBODY}:${NOBODY}`, home]);
  chownSync(home, NOBODY, NOBODY);
  return home;
}

function userEnv(home: string): NodeJS.ProcessEnv {
  return { ...process.env, PITH_HOME: home, PITH_ACCEL: "tcg", HOME: home };
}

/** QEMU processes whose pid files are under this PITH_HOME's machines. */
function machinePids(home: string): number[] {
  const found: number[] = [];
  const walk = (dir: string, depth: number): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory() && depth < 6) walk(path, depth + 1);
      else if (entry.name === "qemu.pid") found.push(Number(readFileSync(path, "utf8").trim()));
    }
  };
  if (existsSync(join(home, "machines"))) walk(join(home, "machines"), 0);
  return found.filter((pid) => pid > 0);
}

function killGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
