import assert from "node:assert/strict";
import { test } from "node:test";
import { parseEnv } from "../cli/commands/run.ts";
import { checkMachineEnv } from "../hypervisor/qemu/machine-env.ts";
import { QemuHypervisor } from "../hypervisor/qemu/qemu-hypervisor.ts";
import type { ImageRecord } from "../image/image.ts";
import { isPithError } from "../shared/errors.ts";
import { ENV_LIMITS, envProblems } from "./env-rules.ts";

test("names, one-line values and sizes; at the bounds is fine, past them is not", () => {
  assert.deepEqual(envProblems({ A: "x", _b9: "", [`N${"x".repeat(ENV_LIMITS.nameLength - 1)}`]: "v".repeat(ENV_LIMITS.valueBytes) }), []);
  const messages = (env: Record<string, string>) => envProblems(env).map((p) => `${p.name ?? "*"}: ${p.message}`);
  assert.deepEqual(messages({ A: "x\ny" }), ["A: the value contains a line break"]);
  assert.deepEqual(messages({ A: "x\ry" }), ["A: the value contains a carriage return"]);
  assert.deepEqual(messages({ A: "x\0" }), ["A: the value contains a NUL character"]);
  assert.deepEqual(messages({ "9A": "x" }), ['9A: "9A" is not a valid environment variable name']);
  assert.deepEqual(messages({ "A-B": "x", "": "y" }), ['A-B: "A-B" is not a valid environment variable name', ': "" is not a valid environment variable name']);
  assert.deepEqual(messages({ PITH_X: "x" }), ["PITH_X: names starting with PITH_ are reserved for Pith"]);
  assert.deepEqual(envProblems({ PITH_X: "x" }, { reserved: false }), []);
  assert.deepEqual(messages({ A: "é".repeat(ENV_LIMITS.valueBytes / 2 + 1) }), [`A: the value is ${ENV_LIMITS.valueBytes + 2} bytes long (at most ${ENV_LIMITS.valueBytes})`]);
  assert.deepEqual(envProblems({ [`N${"x".repeat(ENV_LIMITS.nameLength)}`]: "" }).map((p) => p.message), [`the name is 129 characters long (at most ${ENV_LIMITS.nameLength})`]);
  const many = Object.fromEntries(Array.from({ length: ENV_LIMITS.entries + 1 }, (_, i) => [`V${i}`, ""]));
  assert.deepEqual(messages(many), [`*: ${ENV_LIMITS.entries + 1} variables (at most ${ENV_LIMITS.entries})`]);
  const big = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`V${i}`, "v".repeat(ENV_LIMITS.valueBytes)]));
  assert.match(messages(big)[0]!, /^\*: the variables take 20495 bytes together \(at most 16384\)$/);
});

test("the QEMU driver refuses a bad env before starting anything: a PithError for that machine", async () => {
  assert.throws(() => checkMachineEnv("m1", { A: "x\ny" }), (e: unknown) => isPithError(e) && e.code === "INVALID_ENV" && /^invalid env for machine m1: "A": the value contains a line break$/.test(e.message));
  checkMachineEnv("m1", { PITH_EGRESS: "{}", A: "ok" });
  // The start rejects (no QEMU is spawned: the image's files do not even exist).
  const image = { name: "x", digest: "sha256:x", capabilities: { listen: [], egress: [], memoryMiB: 64, vcpus: 1 } } as unknown as ImageRecord;
  await assert.rejects(
    new QemuHypervisor({ owner: "test" }).start({ id: "m1", image, kernel: "/nonexistent", initrd: "/nonexistent", stateDir: "/nonexistent", env: { A: "x\ny" } }),
    (e: unknown) => isPithError(e) && e.code === "INVALID_ENV",
  );
});

test("pith run -e follows the same rules", () => {
  assert.deepEqual(parseEnv(["A=b=c", "B="]), { A: "b=c", B: "" });
  assert.throws(() => parseEnv(["A=x\ny"]), /--env "A": the value contains a line break/);
  assert.throws(() => parseEnv(["PITH_A=1"]), /reserved for Pith/);
  assert.throws(() => parseEnv(["=1"]), /expected KEY=VALUE/);
  assert.throws(() => parseEnv([`A=${"v".repeat(ENV_LIMITS.valueBytes + 1)}`]), /at most 4096/);
});
