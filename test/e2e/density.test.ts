import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { appImage, bootable } from "../support/images.ts";
import { httpGet, missingForMachines } from "../support/machines.ts";

const skip = missingForMachines();

test("a machine with a 32 MiB translation cache and a free-page-reporting balloon boots, serves, and runs QEMU with both", { skip, timeout: 300_000 }, async (t) => {
  execFileSync("make", ["-s", "-C", "examples/static-c"]);
  const image = await appImage("examples/static-c");
  const stateDir = mkdtempSync(join(tmpdir(), "pith-density-"));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const hypervisor = new QemuHypervisor({ owner: "test", tcgTranslationCacheMiB: 32, freePageReporting: true });
  const machine = await hypervisor.start({ id: "density-options", stateDir, ...(await bootable(image)) });
  t.after(() => machine.stop(1000));
  await machine.whenReady();
  assert.equal((await httpGet(machine.ports[0]!.url)).status, 200);
  // The running QEMU's own command line, not the one Pith meant to give it.
  const argv = readFileSync(`/proc/${machine.pid}/cmdline`, "utf8").split("\0");
  if (machine.accelerator === "tcg") assert.ok(argv.some((a) => a.startsWith("tcg,tb-size=32")), argv.join(" "));
  assert.ok(argv.includes("virtio-balloon-device,free-page-reporting=on"), argv.join(" "));
});
