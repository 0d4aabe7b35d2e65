/**
 * One machine start of each kind, by the Pith checkout given as the first argument (its own
 * hypervisor, init and kernel command line), printed as one JSON line: boot-to-ready of the app
 * (second argument) and the kernel's part of it, and a static-c restore (start() -> ready) from a snapshot it just made, with
 * QEMU's CPU time from start() to ready. Run by bench/clock/ab.ts, alternating checkouts.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processCpuMs } from "../bench-process.ts";

const [root, app] = process.argv.slice(2);
if (!root || !app) throw new Error("usage: machine-start.ts CHECKOUT APP_DIR");
process.env.PITH_ACCEL ??= "tcg";
const { QemuHypervisor } = (await import(join(root, "src/hypervisor/qemu/qemu-hypervisor.ts"))) as typeof import("../../src/hypervisor/qemu/qemu-hypervisor.ts");
const { buildImage } = (await import(join(root, "src/image/image-builder.ts"))) as typeof import("../../src/image/image-builder.ts");
const { bootFiles } = (await import(join(root, "src/image/image-store.ts"))) as typeof import("../../src/image/image-store.ts");
const { loadAppManifest } = (await import(join(root, "src/manifest/app-manifest.ts"))) as typeof import("../../src/manifest/app-manifest.ts");

const dir = mkdtempSync(join(tmpdir(), "pith-clock-ab-"));
const hypervisor = new QemuHypervisor({ owner: "bench-clock" });
const started: { stop: (graceMs: number) => Promise<unknown> }[] = [];
try {
  const bootImage = await buildImage(await loadAppManifest(join(root, app)));
  const booted = await hypervisor.start({ id: "ab-boot", stateDir: join(dir, "boot"), image: bootImage.record, ...(await bootFiles(bootImage)) });
  started.push(booted);
  const { readyMs: bootReadyMs, kernelMs: bootKernelMs } = await booted.whenReady();
  const bootCpuMs = processCpuMs(booted.pid);
  await booted.stop(1000);

  execFileSync("make", ["-s", "-C", join(root, "examples/static-c")]);
  const snapImage = await buildImage(await loadAppManifest(join(root, "examples/static-c")));
  const boot = { image: snapImage.record, ...(await bootFiles(snapImage)) };
  const source = await hypervisor.start({ id: "ab-source", ...boot, stateDir: join(dir, "source"), snapshotSource: true });
  started.push(source);
  await source.whenReady();
  await source.saveSnapshot(join(dir, "state"));
  await source.stop(0);
  const startAt = performance.now();
  const restored = await hypervisor.start({ id: "ab-restored", ...boot, stateDir: join(dir, "restored"), restoreFrom: join(dir, "state") });
  started.push(restored);
  await restored.whenReady();
  const restoreReadyMs = performance.now() - startAt;
  const restoreCpuMs = processCpuMs(restored.pid);
  process.stdout.write(`${JSON.stringify({ bootReadyMs, bootKernelMs, bootCpuMs, restoreReadyMs, restoreCpuMs })}\n`);
} finally {
  await Promise.all(started.map((m) => m.stop(1000).catch(() => {})));
  rmSync(dir, { recursive: true, force: true });
}
