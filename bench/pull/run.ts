/**
 * What pulling costs a node: time to start hello-ts and get its first 200 on a node whose image
 * store lacks the image (pull from a registry on loopback, verify every blob, unpack, boot),
 * against a node that has it (boot only). Runs are interleaved, cold then warm, then warm then
 * cold, so the host's load drifts over both alike.
 *
 *   npx tsx bench/pull/run.ts [--runs N (5)] [--app hello-ts]
 *
 * Each node is a PITH_HOME of its own (sharing only the compiled tools), as nodes share no
 * files. The cold node is a fresh, empty one every run. The registry is Debian's docker-registry
 * on 127.0.0.1, started and removed by the bench. Printed: medians of the whole start, of the
 * pull alone, and the cold/warm ratio (paired run by run, too).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, symlinkSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pullIfMissing } from "../../src/agent/image-pull.ts";
import { QemuHypervisor } from "../../src/hypervisor/qemu/qemu-hypervisor.ts";
import { buildImage } from "../../src/image/image-builder.ts";
import { bootFiles, readStoredImage } from "../../src/image/image-store.ts";
import { loadAppManifest } from "../../src/manifest/app-manifest.ts";
import { pushImage } from "../../src/registry/push.ts";
import { parseRegistryReference } from "../../src/registry/registry-reference.ts";
import { pithHome, pithRoot } from "../../src/shared/paths.ts";
import { streamProgress } from "../../src/shared/progress.ts";
import { registryMissing, startRegistry } from "../../test/support/registry.ts";
import { cleanupOnExit, killProcessGroup } from "../bench-process.ts";

const { values: flags } = parseArgs({ options: { runs: { type: "string", default: "5" }, app: { type: "string", default: "hello-ts" }, help: { type: "boolean", short: "h", default: false } } });
if (flags.help) {
  process.stdout.write("usage: npx tsx bench/pull/run.ts [--runs N (5)] [--app hello-ts]\n");
  process.exit(0);
}
const runs = Number(flags.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a whole number >= 1, got ${flags.runs}`);
const missing = registryMissing();
if (missing) throw new Error(`bench/pull needs ${missing}`);
process.env.PITH_ACCEL = "tcg";

const realHome = pithHome();
const dir = join(pithRoot(), "examples", flags.app);
if (flags.app === "static-c") spawnSync("make", ["-s", "-C", dir]);
const image = await buildImage(await loadAppManifest(dir), streamProgress(`building ${flags.app}`));
const registry = await startRegistry();
const running = new Set<number>();
const homes: string[] = [];
cleanupOnExit(
  () => {
    running.forEach((pid) => killProcessGroup(pid));
    spawnSync("rm", ["-rf", registry.storage, ...homes]);
  },
  "stopping the machines and the registry",
  (l) => process.stderr.write(`${l}\n`),
);

/** A node's PITH_HOME: its own image store and machines, the host's compiled tools. */
async function nodeHome(): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), "pith-bench-pull-"));
  homes.push(home);
  mkdirSync(join(realHome, "tools"), { recursive: true });
  symlinkSync(join(realHome, "tools"), join(home, "tools"));
  return home;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const hypervisor = new QemuHypervisor({ owner: "bench" });

try {
  const pushed = await pushImage(image, parseRegistryReference(`${registry.address}/${flags.app}:bench`));
  process.stderr.write(`pushed ${pushed.pinned} (${(pushed.bytes / 1024 / 1024).toFixed(1)} MiB)\n`);
  const warmHome = await nodeHome();
  process.env.PITH_HOME = warmHome;
  await pullIfMissing(pushed.pinned, image.record.digest, () => {});

  /** One start as an agent does it: pull if the store lacks the image, boot, first 200. */
  async function start(home: string, label: string): Promise<{ totalMs: number; pullMs: number; bytes: number }> {
    process.env.PITH_HOME = home;
    const started = performance.now();
    const pulled = await pullIfMissing(pushed.pinned, image.record.digest, () => {});
    const pullMs = performance.now() - started;
    const stored = (await readStoredImage(image.record.digest))!;
    const stateDir = join(home, "machines", label);
    mkdirSync(stateDir, { recursive: true });
    const machine = await hypervisor.start({ id: label, image: stored.record, ...(await bootFiles(stored)), stateDir });
    running.add(machine.pid);
    try {
      await machine.whenReady();
      const answer = await fetch(machine.ports[0]!.url, { signal: AbortSignal.timeout(10_000) });
      await answer.text();
      if (answer.status !== 200) throw new Error(`${label} answered ${answer.status}`);
      return { totalMs: performance.now() - started, pullMs, bytes: pulled?.bytes ?? 0 };
    } finally {
      await machine.stop(1000);
      running.delete(machine.pid);
    }
  }

  const cold: { totalMs: number; pullMs: number; bytes: number }[] = [];
  const warm: number[] = [];
  // One warm-up of each, not counted: the first boot pages QEMU and the image in.
  for (let run = -1; run < runs; run++) {
    const order = run % 2 === 0 ? (["cold", "warm"] as const) : (["warm", "cold"] as const);
    for (const side of order) {
      if (side === "cold") {
        const home = await nodeHome();
        const result = await start(home, `pull-cold-${run + 1}`);
        await rm(home, { recursive: true, force: true });
        if (run >= 0) cold.push(result);
        process.stderr.write(`run ${run + 1} cold: ${result.totalMs.toFixed(0)} ms (pull ${result.pullMs.toFixed(0)} ms, ${(result.bytes / 1024 / 1024).toFixed(1)} MiB) load ${loadavg()[0]!.toFixed(2)}\n`);
      } else {
        const result = await start(warmHome, `pull-warm-${run + 1}`);
        if (run >= 0) warm.push(result.totalMs);
        process.stderr.write(`run ${run + 1} warm: ${result.totalMs.toFixed(0)} ms load ${loadavg()[0]!.toFixed(2)}\n`);
      }
    }
  }
  const coldTotal = median(cold.map((c) => c.totalMs));
  const paired = median(cold.map((c, i) => c.totalMs / warm[i]!));
  process.stdout.write(
    `${flags.app} (${(cold[0]!.bytes / 1024 / 1024).toFixed(1)} MiB pulled): cold (pull + start) median ${coldTotal.toFixed(0)} ms, ` +
      `of which pull ${median(cold.map((c) => c.pullMs)).toFixed(0)} ms; warm (start) median ${median(warm).toFixed(0)} ms; ` +
      `cold/warm ${(coldTotal / median(warm)).toFixed(2)}, paired ${paired.toFixed(2)}; ${runs} runs each, load ${loadavg()[0]!.toFixed(2)}\n`,
  );
} finally {
  process.env.PITH_HOME = realHome;
  await registry.stop();
  for (const home of homes) await rm(home, { recursive: true, force: true });
}
