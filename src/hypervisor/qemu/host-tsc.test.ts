import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { arch, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readOrMeasureHostTscKhz } from "./host-tsc.ts";

const skip = arch() !== "x64" ? "the TSC helper measures an x86 host" : undefined;
const bootId = (): string => readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();

function withPithHome(t: { after: (fn: () => void) => void }): string {
  const home = mkdtempSync(join(tmpdir(), "pith-tsc-"));
  const before = process.env.PITH_HOME;
  process.env.PITH_HOME = home;
  t.after(() => {
    if (before === undefined) delete process.env.PITH_HOME;
    else process.env.PITH_HOME = before;
    rmSync(home, { recursive: true, force: true });
  });
  return home;
}

test("the host's TSC rate is measured, cached for this boot, and read back", { skip, timeout: 60_000 }, async (t) => {
  const home = withPithHome(t);
  const khz = await readOrMeasureHostTscKhz();
  assert.ok(khz >= 100_000 && khz <= 20_000_000, `a TSC rate: ${khz} kHz`);
  const cached = JSON.parse(readFileSync(join(home, "host-tsc.json"), "utf8")) as { bootId: string; khz: number };
  assert.deepEqual(cached, { bootId: bootId(), khz });
  // A second measurement agrees within 0.1% (the helper's window is 200 ms of a steady counter).
  writeFileSync(join(home, "host-tsc.json"), "");
  const again = await readOrMeasureHostTscKhz();
  assert.ok(Math.abs(again / khz - 1) < 0.001, `${again} kHz against ${khz} kHz`);
  // What this boot cached is used as it is.
  writeFileSync(join(home, "host-tsc.json"), JSON.stringify({ bootId: bootId(), khz: 1_234_567 }));
  assert.equal(await readOrMeasureHostTscKhz(), 1_234_567);
});

test("a cache from another boot, or not a TSC rate, is measured again", { skip, timeout: 60_000 }, async (t) => {
  const home = withPithHome(t);
  const file = join(home, "host-tsc.json");
  for (const stale of [{ bootId: "another-boot", khz: 1_234_567 }, { bootId: bootId(), khz: 5 }, { bootId: bootId(), khz: "2100000" }, "not json"]) {
    writeFileSync(file, typeof stale === "string" ? stale : JSON.stringify(stale));
    const khz = await readOrMeasureHostTscKhz();
    assert.ok(khz !== 1_234_567 && khz >= 100_000 && khz <= 20_000_000, `measured again after ${JSON.stringify(stale)}: ${khz} kHz`);
  }
});
