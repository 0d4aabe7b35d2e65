import { constants } from "node:fs";
import { access, readFile, writeFile } from "node:fs/promises";
import { release } from "node:os";
import { dirname, join } from "node:path";
import { pithHome } from "../../shared/paths.ts";
import type { Accelerator } from "./qemu-argv.ts";
import { ensurePrivateDir } from "../../shared/private-files.ts";

/**
 * Which accelerator machines on this host use. KVM only where it really runs a guest: /dev/kvm
 * can exist and open yet hang every boot (nested setups that offer only a paravirtual mode), so
 * the first machine started with KVM is the probe: if its init does not report within the probe
 * timeout it is killed and the machine is booted again with TCG, and the verdict is remembered
 * per host kernel and QEMU until PITH_HOME is cleared. PITH_ACCEL=kvm|tcg overrides it all.
 */
export type AcceleratorChoice = { accelerator: Accelerator; probe: boolean; reason: string };

interface Verdict {
  hostKernel: string;
  qemu: string;
  accelerator: Accelerator;
  reason: string;
  checkedAt: string;
}

/** Long enough for a real KVM boot to reach init many times over; short enough not to matter once. */
export const KVM_PROBE_TIMEOUT_MS = 4000;

const verdictFile = (): string => join(pithHome(), "accelerator.json");

export async function chooseAccelerator(qemuVersion: string): Promise<AcceleratorChoice> {
  const forced = process.env.PITH_ACCEL;
  if (forced === "kvm" || forced === "tcg") return { accelerator: forced, probe: false, reason: "PITH_ACCEL" };
  try {
    await access("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return { accelerator: "tcg", probe: false, reason: "/dev/kvm is not available" };
  }
  const verdict = await readVerdict();
  if (verdict && verdict.hostKernel === release() && verdict.qemu === qemuVersion) {
    return { accelerator: verdict.accelerator, probe: false, reason: verdict.reason };
  }
  return { accelerator: "kvm", probe: true, reason: "probing KVM" };
}

export async function recordVerdict(qemuVersion: string, accelerator: Accelerator, reason: string): Promise<void> {
  const verdict: Verdict = { hostKernel: release(), qemu: qemuVersion, accelerator, reason, checkedAt: new Date().toISOString() };
  await ensurePrivateDir(dirname(verdictFile()));
  await writeFile(verdictFile(), JSON.stringify(verdict, null, 2) + "\n");
}

async function readVerdict(): Promise<Verdict | undefined> {
  const text = await readFile(verdictFile(), "utf8").catch(() => undefined);
  if (!text) return undefined;
  try {
    return JSON.parse(text) as Verdict;
  } catch {
    return undefined;
  }
}
