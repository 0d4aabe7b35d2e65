import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import type { Machine, MachineSpec } from "../../src/hypervisor/hypervisor.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import type { StoredImage } from "../../src/image/image-store.ts";
import { bootable } from "./images.ts";

// Tests run under TCG unless told otherwise (the accelerator test clears this to probe).
process.env.PITH_ACCEL ??= "tcg";

/** Why a machine test cannot run here, or undefined when it can. */
export function missingForMachines(): string | undefined {
  try {
    execFileSync("qemu-system-x86_64", ["--version"], { stdio: "ignore" });
  } catch {
    return "needs qemu-system-x86_64 (apt-get install qemu-system-x86, or bash scripts/setup.sh)";
  }
  if (!existsSync("/usr/share/qemu/qboot.rom")) return "needs /usr/share/qemu/qboot.rom from qemu-system-data";
  if (!existsSync("/usr/src/linux-source-6.1.tar.xz") && !process.env.PITH_HOME) return "needs Debian's linux-source-6.1 to build kernels";
  return undefined;
}

/**
 * Starts a machine that the test owns: it is stopped (and its state removed) when the test ends,
 * whether it passed or not.
 */
export async function startMachine(t: TestContext, image: StoredImage, extra: Partial<MachineSpec> = {}): Promise<Machine> {
  const stateDir = mkdtempSync(join(tmpdir(), "pith-machine-"));
  const id = `${image.record.name}-${randomBytes(3).toString("hex")}`;
  let machine: Machine | undefined;
  // Registered first: a start that is refused (a test of a refusal) leaves its state dir too.
  t.after(async () => {
    await machine?.stop(1000);
    rmSync(stateDir, { recursive: true, force: true });
  });
  machine = await new QemuHypervisor({ owner: "test" }).start({ id, stateDir, ...(await bootable(image)), ...extra });
  return machine;
}

/** GET a URL with a deadline; returns status and body, or throws the connection error. */
export async function httpGet(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: response.status, body: await response.text() };
}
