import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyKsmSettings, enableKsmForMachines, KSM_DENSITY_SETTINGS, ksmAvailable, readKsmSettings, readKsmStats } from "./ksm.ts";

/** A stand-in for /sys/kernel/mm/ksm: the same files, in a temp dir. */
function fakeKsmDir(values: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "pith-ksm-"));
  for (const [name, value] of Object.entries(values)) writeFileSync(join(dir, name), `${value}\n`);
  return dir;
}

test("applying KSM settings writes them, and the undo restores exactly what was there", (t) => {
  const dir = fakeKsmDir({ run: "0", pages_to_scan: "100", sleep_millisecs: "20" });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.equal(ksmAvailable(dir), true);
  const undo = applyKsmSettings(KSM_DENSITY_SETTINGS, dir);
  assert.deepEqual(readKsmSettings(dir), KSM_DENSITY_SETTINGS);
  undo();
  assert.deepEqual(readKsmSettings(dir), { run: 0, pages_to_scan: 100, sleep_millisecs: 20 });
  assert.equal(readFileSync(join(dir, "run"), "utf8"), "0");
});

test("a KSM file that does not hold a number is an error naming it, and nothing is written", (t) => {
  const dir = fakeKsmDir({ run: "0", pages_to_scan: "lots", sleep_millisecs: "20" });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.throws(() => applyKsmSettings(KSM_DENSITY_SETTINGS, dir), /pages_to_scan holds "lots"/);
  assert.equal(readFileSync(join(dir, "run"), "utf8").trim(), "0");
});

test("KSM statistics are read from their files; a host without KSM says so", (t) => {
  const dir = fakeKsmDir({ pages_shared: "10", pages_sharing: "250", full_scans: "3" });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.deepEqual(readKsmStats(dir), { pagesShared: 10, pagesSharing: 250, fullScans: 3 });
  assert.equal(ksmAvailable(join(dir, "absent")), false);
});

test("--ksm on a host without KSM, or whose settings cannot be written, is a clear error and changes nothing", (t) => {
  const dir = fakeKsmDir({ run: "0", pages_to_scan: "100", sleep_millisecs: "20" });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.throws(() => enableKsmForMachines(join(dir, "absent")), /--ksm: this host's kernel has no KSM/);
  rmSync(join(dir, "sleep_millisecs"));
  assert.throws(() => enableKsmForMachines(dir), /--ksm: cannot set/);
  assert.equal(readFileSync(join(dir, "run"), "utf8").trim(), "0", "ksmd was not started");
});
