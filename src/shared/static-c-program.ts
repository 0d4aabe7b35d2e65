import { existsSync } from "node:fs";
import { readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { userError } from "./errors.ts";
import { execFile } from "./exec.ts";
import { sha256 } from "./hash.ts";
import { toolsDir } from "./paths.ts";
import { ensurePrivateDir } from "./private-files.ts";

/**
 * Pith's small C programs (the guest's init, the host's network helper) are compiled from
 * source on first use and cached by the hash of their source, compiler and flags, so an edit or
 * a new compiler rebuilds them and nothing else does. musl makes the static ones tiny; gcc
 * -static is the fallback.
 */
export async function ensureStaticCProgram(name: string, sourcePath: string): Promise<string> {
  const compiler = existsSync("/usr/bin/musl-gcc") ? "musl-gcc" : "gcc";
  return ensureCProgram(name, sourcePath, compiler, ["-static", "-Os", "-s", "-Wall"], [], "run: apt-get install musl-tools (or bash scripts/setup.sh)");
}

/**
 * A host program that links a system library (pith-net needs libslirp, which needs glib, so it
 * cannot be static): gcc, dynamically linked, with the library's flags from pkg-config. Debian's
 * slirp.pc requires glib-2.0.pc, which only glib's -dev package has; the plain `-l` is enough
 * then, since the source includes the header by its directory (<slirp/libslirp.h>).
 */
export async function ensureLinkedCProgram(name: string, sourcePath: string, library: { pkgConfig: string; lib: string; debianPackage: string }): Promise<string> {
  const flags = await execFile("pkg-config", ["--cflags", "--libs", library.pkgConfig])
    .then(({ stdout }) => stdout.trim().split(/\s+/).filter(Boolean))
    .catch(() => [`-l${library.lib}`]);
  return ensureCProgram(name, sourcePath, "gcc", ["-O2", "-s", "-Wall"], flags, `run: apt-get install ${library.debianPackage} (or bash scripts/setup.sh)`);
}

async function ensureCProgram(name: string, sourcePath: string, compiler: string, options: string[], libraries: string[], fix: string): Promise<string> {
  const source = await readFile(sourcePath, "utf8");
  const version = (await execFile(compiler, ["--version"]).catch(() => ({ stdout: "" }))).stdout;
  if (!version) throw userError("NO_C_COMPILER", `cannot compile ${name}: ${compiler} is not installed`, fix);
  // Static programs keep the key they always had, so their cached builds stay valid.
  const key = sha256(JSON.stringify([source, compiler, version, ...(libraries.length ? [options, libraries] : [])])).slice(0, 16);
  const dir = join(toolsDir(), `${name}-${key}`);
  const binary = join(dir, name);
  if (existsSync(binary)) return binary;
  await ensurePrivateDir(dir);
  const staging = `${binary}.${process.pid}.tmp`;
  try {
    await execFile(compiler, [...options, "-o", staging, sourcePath, ...libraries], { code: "C_COMPILE_FAILED" }).catch((e: Error) => {
      throw userError("C_COMPILE_FAILED", `cannot compile ${name}: ${e.message}`, fix);
    });
    await rename(staging, binary);
  } finally {
    await rm(staging, { force: true });
  }
  return binary;
}
