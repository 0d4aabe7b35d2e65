import { readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { execFile } from "../../shared/exec.ts";
import { pithHome, pithRoot } from "../../shared/paths.ts";
import { ensurePithHome, writePrivateFile } from "../../shared/private-files.ts";
import { ensureStaticCProgram } from "../../shared/static-c-program.ts";

/**
 * The host's TSC rate in kHz, which a TCG guest must be told (`tsc_early_khz`): TCG hands the
 * guest the host's TSC ticks unscaled, and the guest cannot calibrate them itself (against the
 * PIT it hangs at random under emulation). Told a wrong rate, every clock in the guest runs off
 * by the ratio: 2000000 on this 2.1 GHz host made them 5% fast.
 *
 * Measured once per host boot by a small helper (host-tsc-rate.c) and kept in PITH_HOME, keyed by
 * the kernel's boot id: a TSC's rate is fixed until the host reboots (or moves, as a VM: a new
 * boot id too). Where it cannot be measured (no compiler, not x86), the old assumption stands.
 */
export const ASSUMED_TSC_KHZ = 2_000_000;

/** Outside this range a measurement or a cached value is not a TSC rate (100 MHz to 20 GHz). */
const PLAUSIBLE_KHZ = { min: 100_000, max: 20_000_000 };

let measured: Promise<number> | undefined;

export function hostTscKhz(warn: (message: string) => void = (m) => process.stderr.write(`pith: ${m}\n`)): Promise<number> {
  measured ??= readOrMeasureHostTscKhz().catch((e: Error) => {
    warn(`cannot measure the host's TSC rate (${e.message}); TCG guests assume ${ASSUMED_TSC_KHZ} kHz and their clocks may run fast or slow`);
    return ASSUMED_TSC_KHZ;
  });
  return measured;
}

const isPlausible = (khz: unknown): khz is number => typeof khz === "number" && Number.isInteger(khz) && khz >= PLAUSIBLE_KHZ.min && khz <= PLAUSIBLE_KHZ.max;

/** The rate cached for this boot of the host, or measured now and cached (hostTscKhz memoizes it). */
export async function readOrMeasureHostTscKhz(): Promise<number> {
  const bootId = (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim();
  const cacheFile = join(pithHome(), "host-tsc.json");
  // Missing, unreadable or not JSON: measured again.
  const cached = await readFile(cacheFile, "utf8")
    .then((text) => JSON.parse(text) as { bootId?: unknown; khz?: unknown } | null)
    .catch(() => undefined);
  if (cached?.bootId === bootId && isPlausible(cached.khz)) return cached.khz;

  const helper = await ensureStaticCProgram("host-tsc-rate", join(pithRoot(), "src/hypervisor/qemu/host-tsc-rate.c"));
  const khz = Number((await execFile(helper, [])).stdout.trim());
  if (!isPlausible(khz)) throw new Error(`the helper measured ${khz} kHz`);
  await ensurePithHome();
  const staging = `${cacheFile}.${process.pid}.tmp`;
  await writePrivateFile(staging, `${JSON.stringify({ bootId, khz })}\n`);
  await rename(staging, cacheFile).catch(async (e: Error) => {
    await rm(staging, { force: true });
    throw e;
  });
  return khz;
}
