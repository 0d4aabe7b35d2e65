import assert from "node:assert/strict";
import { constants, accessSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { appImage } from "../support/images.ts";
import { missingForMachines, startMachine } from "../support/machines.ts";

const skip = missingForMachines();

const kvmOpens = (): boolean => {
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
};

describe("accelerator choice", { skip, timeout: 300_000 }, () => {
  test("without a saved verdict, KVM is probed with a bound and TCG takes over where it does not boot", async (t) => {
    const image = await appImage("examples/static-c");
    const home = mkdtempSync(join(tmpdir(), "pith-accel-"));
    const saved = { home: process.env.PITH_HOME, accel: process.env.PITH_ACCEL };
    process.env.PITH_HOME = home;
    delete process.env.PITH_ACCEL;
    t.after(() => {
      if (saved.home === undefined) delete process.env.PITH_HOME;
      else process.env.PITH_HOME = saved.home;
      if (saved.accel !== undefined) process.env.PITH_ACCEL = saved.accel;
      rmSync(home, { recursive: true, force: true });
    });

    const started = Date.now();
    const machine = await startMachine(t, image);
    await machine.whenReady();
    assert.ok(Date.now() - started < 60_000, "the probe never hangs the start");
    if (!kvmOpens()) {
      assert.equal(machine.accelerator, "tcg");
      return;
    }
    // /dev/kvm opens: the probe ran and its verdict matches what the machine got.
    const verdict = JSON.parse(readFileSync(join(home, "accelerator.json"), "utf8")) as { accelerator: string; reason: string };
    assert.equal(verdict.accelerator, machine.accelerator, verdict.reason);
    if (machine.accelerator === "tcg") assert.match(verdict.reason, /did not reach init within \d+ ms/);
  });
});
