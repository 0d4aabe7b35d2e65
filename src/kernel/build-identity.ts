import { execFile } from "../shared/exec.ts";
import { sha256 } from "../shared/hash.ts";
import type { LinuxSource } from "./linux-source.ts";

/**
 * The reuse key of a kernel build tree: what, besides the .config, decides the bytes of its
 * objects. Kbuild rebuilds an object when its command line, its sources or a CONFIG_ symbol it
 * reads changes, but it cannot tell that the compiler or linker was upgraded in place, so a tree
 * built under any other key is never reused.
 */
export async function buildReuseKey(
  source: LinuxSource,
  buildDir: string,
  makeArgs: readonly string[],
  kbuildEnv: Readonly<Record<string, string>>,
): Promise<string> {
  const [gcc, ld, make] = await Promise.all([toolVersion("gcc"), toolVersion("ld"), toolVersion("make")]);
  // The build dir too: the host tools record it in their dependencies, so a tree built elsewhere rebuilds everything.
  return sha256(JSON.stringify({ source: [source.version, source.dir], buildDir, gcc, ld, make, makeArgs, kbuildEnv }));
}

async function toolVersion(tool: string): Promise<string> {
  const { stdout } = await execFile(tool, ["--version"], { code: "KERNEL_TOOLCHAIN_MISSING" });
  return stdout.trim();
}
