import { existsSync } from "node:fs";
import { readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { userError } from "./errors.ts";
import { execFile } from "./exec.ts";
import { sha256 } from "./hash.ts";
import { toolsDir } from "./paths.ts";
import { ensurePrivateDir } from "./private-files.ts";

/**
 * Pith's small C programs (the guest's init, the host's egress relay) are compiled from source
 * on first use and cached by the hash of their source and compiler, so an edit or a new compiler
 * rebuilds them and nothing else does. musl makes them tiny; gcc -static is the fallback.
 */
export async function ensureStaticCProgram(name: string, sourcePath: string): Promise<string> {
  const source = await readFile(sourcePath, "utf8");
  const compiler = existsSync("/usr/bin/musl-gcc") ? "musl-gcc" : "gcc";
  const version = (await execFile(compiler, ["--version"]).catch(() => ({ stdout: "" }))).stdout;
  if (!version) throw userError("NO_C_COMPILER", `cannot compile ${name}: neither musl-gcc nor gcc is installed`, "run: apt-get install musl-tools (or bash scripts/setup.sh)");
  const key = sha256(JSON.stringify([source, compiler, version])).slice(0, 16);
  const dir = join(toolsDir(), `${name}-${key}`);
  const binary = join(dir, name);
  if (existsSync(binary)) return binary;
  await ensurePrivateDir(dir);
  const staging = `${binary}.${process.pid}.tmp`;
  try {
    await execFile(compiler, ["-static", "-Os", "-s", "-Wall", "-o", staging, sourcePath], { code: "C_COMPILE_FAILED" });
    await rename(staging, binary);
  } finally {
    await rm(staging, { force: true });
  }
  return binary;
}
