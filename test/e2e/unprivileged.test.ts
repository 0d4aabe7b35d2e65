import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { kernelCacheDir, pithRoot } from "../../src/shared/paths.ts";
import { missingForMachines } from "../support/machines.ts";

/** An ordinary user to run Pith as: the test switches to it, so the test itself must be root. */
const NOBODY = 65534;
const skip =
  missingForMachines() ??
  (process.getuid?.() !== 0 ? "switching to an ordinary user needs root" : !existsSync("/usr/bin/setpriv") ? "needs setpriv (util-linux)" : undefined);

describe("pith run as an ordinary user", { skip, timeout: 300_000 }, () => {
  test("runs the machine with the parts of the jail a user can have, and says which are missing", async (t) => {
    execFileSync("make", ["-s", "-C", join(pithRoot(), "examples/static-c")]);
    // The user's own PITH_HOME, with root's cached kernels copied in so nothing is compiled.
    const home = mkdtempSync(join(tmpdir(), "pith-user-"));
    t.after(() => rmSync(home, { recursive: true, force: true }));
    mkdirSync(join(home, "kernel"));
    for (const entry of readdirSync(kernelCacheDir())) {
      if (entry === "src" || entry === "build" || entry.endsWith(".lock")) continue;
      cpSync(join(kernelCacheDir(), entry), join(home, "kernel", entry), { recursive: true });
    }
    execFileSync("chown", ["-R", `${NOBODY}:${NOBODY}`, home]);
    chownSync(home, NOBODY, NOBODY);

    const child = spawn("setpriv", [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", process.execPath, join(pithRoot(), "bin/pith.js"), "run", "examples/static-c", "--no-console"], {
      cwd: pithRoot(),
      env: { ...process.env, PITH_HOME: home, PITH_ACCEL: "tcg", HOME: home },
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
    const url = await waitFor(() => /-> (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)?.[1], 120_000, () => output);

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

async function waitFor<T>(probe: () => T | undefined, timeoutMs: number, describe: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out; output so far:\n${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
