import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "../shared/exec.ts";
import { GUEST_APP_SCRIPT } from "./guest-paths.ts";
import { COMPILE_APP_SCRIPT } from "./node-start-script.ts";

/** Compiling even a large bundle takes a second or two natively; past this, something is wrong. */
const CACHE_STEP_TIMEOUT_MS = 60_000;

/**
 * V8 seeds its string hashes from the process's random seed, and they end up in the cache's bytes.
 * A fixed seed, in the builder only, makes the same bundle give the same cache, and so the same
 * image digest. V8 leaves the random seed out of the flags a cache must match, and the guest, which
 * runs with its own random seed, rehashes the strings as it loads them.
 */
const DETERMINISTIC_SEED = "--random-seed=1";

const MAKE = `
const fs = require("node:fs"), vm = require("node:vm"), v8 = require("node:v8"), Module = require("node:module");
${COMPILE_APP_SCRIPT}
const [source, filename, out] = process.argv.slice(1);
fs.writeFileSync(out, compileApp(vm, v8, Module, fs.readFileSync(source, "utf8"), filename, undefined, (script) => script.createCachedData()));
`;

const CHECK = `
const fs = require("node:fs"), vm = require("node:vm"), v8 = require("node:v8"), Module = require("node:module");
${COMPILE_APP_SCRIPT}
const [source, filename, cache] = process.argv.slice(1);
process.stdout.write(compileApp(vm, v8, Module, fs.readFileSync(source, "utf8"), filename, fs.readFileSync(cache)).cachedDataRejected ? "refused" : "accepted");
`;

export type CodeCache = { bytes: Uint8Array } | { refused: string };

/**
 * The V8 code cache of a CommonJS app (`source`, as the start script will compile it), made at
 * build time by `node`, the very binary the guest runs, with the same `nodeFlags` (V8 refuses a
 * cache made under other flags). It is then loaded by a second process as the guest would: a
 * cache V8 refuses there is not shipped, and the image simply starts without one.
 */
export async function makeCodeCache(node: string, source: Uint8Array, nodeFlags: readonly string[] = [], filename = GUEST_APP_SCRIPT): Promise<CodeCache> {
  const work = await mkdtemp(join(tmpdir(), "pith-code-cache-"));
  try {
    const sourcePath = join(work, "main.cjs");
    const cachePath = join(work, "main.cjs.v8-cache");
    await writeFile(sourcePath, source);
    const run = (flags: readonly string[], script: string, ...args: string[]): Promise<{ stdout: string }> =>
      execFile(node, [...flags, "-e", script, ...args], { code: "CODE_CACHE_FAILED", timeout: CACHE_STEP_TIMEOUT_MS, env: {} });
    const made = await run([DETERMINISTIC_SEED, ...nodeFlags], MAKE, sourcePath, filename, cachePath).then(() => "", (e: Error) => e.message);
    const bytes = await readFile(cachePath).catch(() => undefined);
    if (!bytes || bytes.byteLength === 0) return { refused: `node made no code cache${made ? `: ${made.slice(0, 300)}` : ""}` };
    const check = await run(nodeFlags, CHECK, sourcePath, filename, cachePath).catch((e: Error) => ({ stdout: e.message }));
    return check.stdout === "accepted" ? { bytes } : { refused: `V8 refused the cache it made: ${check.stdout.slice(0, 200)}` };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
