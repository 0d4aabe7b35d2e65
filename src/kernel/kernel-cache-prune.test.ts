import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { useTempPithHome } from "../shared/temp-pith-home.ts";
import { pruneKernelCache } from "./kernel-cache-prune.ts";
import { listKernels } from "./kernel-cache.ts";

const pithHome = useTempPithHome("pith-prune-");
const CURRENT = "6.1.192-3+pith.aaaaaaaaaaaa";
const OLD = "6.1.192-3";

const kernelRoot = (): string => join(pithHome.home(), "kernel");

function fakeSource(version: string): string {
  const dir = join(kernelRoot(), "src", version);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "Makefile"), "x".repeat(10_000));
  return dir;
}

function fakeKernel(hashChar: string, sourceVersion: string): string {
  const configHash = hashChar.repeat(64);
  const dir = join(kernelRoot(), configHash);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "vmlinux"), "k".repeat(20_000));
  writeFileSync(join(dir, "kernel.json"), JSON.stringify({ configHash, fragments: ["base"], sourceVersion, options: 1, vmlinuxBytes: 20_000, buildSeconds: 1, buildSteps: 1, builtAt: new Date().toISOString() }));
  mkdirSync(join(kernelRoot(), "by-fragments"), { recursive: true });
  writeFileSync(join(kernelRoot(), "by-fragments", hashChar.repeat(8)), configHash);
  return configHash;
}

/** A pid that is certainly not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn("true");
  await new Promise((resolve) => child.on("exit", resolve));
  return child.pid!;
}

test("prune removes the source and kernels of other source versions and dead processes' scratch, and keeps the current ones", async () => {
  const currentSource = fakeSource(CURRENT);
  const oldSource = fakeSource(OLD);
  const current = fakeKernel("a", CURRENT);
  const old = fakeKernel("b", OLD);
  const dead = await deadPid();
  const deadExtract = join(kernelRoot(), "src", `.extract-${dead}`);
  const liveExtract = join(kernelRoot(), "src", `.extract-${process.pid}`);
  const deadConfig = join(kernelRoot(), "build", `0123456789abcdef-${dead}`);
  for (const d of [deadExtract, liveExtract, deadConfig]) mkdirSync(d, { recursive: true });

  const dry = await pruneKernelCache({ currentSourceVersion: CURRENT, dryRun: true });
  assert.deepEqual(dry.map((i) => i.kind).sort(), ["kernel", "leftover", "leftover", "source"]);
  assert.ok(existsSync(oldSource) && existsSync(join(kernelRoot(), old)) && existsSync(deadExtract), "a dry run removes nothing");
  const source = dry.find((i) => i.kind === "source")!;
  assert.equal(source.name, OLD);
  assert.ok(source.bytes >= 10_000, `the source's size is counted: ${source.bytes}`);

  const pruned = await pruneKernelCache({ currentSourceVersion: CURRENT });
  assert.deepEqual(pruned.map((i) => i.path).sort(), dry.map((i) => i.path).sort(), "what a dry run lists is what goes");
  assert.equal(existsSync(oldSource), false);
  assert.equal(existsSync(join(kernelRoot(), old)), false);
  assert.equal(existsSync(deadExtract), false);
  assert.equal(existsSync(deadConfig), false);
  assert.equal(existsSync(join(kernelRoot(), "by-fragments", "b".repeat(8))), false, "the index no longer names the removed kernel");

  assert.ok(existsSync(join(currentSource, "Makefile")), "the current source stays");
  assert.ok(existsSync(liveExtract), "a running process's extraction stays");
  assert.deepEqual((await listKernels()).map((k) => k.configHash), [current]);
  assert.ok(existsSync(join(kernelRoot(), "by-fragments", "a".repeat(8))));

  assert.deepEqual(await pruneKernelCache({ currentSourceVersion: CURRENT }), [], "a second prune finds nothing");
});
