import { existsSync } from "node:fs";
import { realpath, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { execFile } from "../shared/exec.ts";
import { sha256File } from "../shared/hash.ts";
import { toolsDir } from "../shared/paths.ts";
import { ensurePrivateDir } from "../shared/private-files.ts";

/** Where the runtime sits in every Node image: on the runtime disk, mounted at /runtime. */
export const GUEST_NODE_PATH = "/runtime/node";

/**
 * The Node.js binary that goes into images: the host's own node (never a download), with its
 * debug symbols stripped (98 MB to 86 MB for node 20), cached by the hash of the original.
 */
export async function preparedNodeBinary(hostNode = process.execPath): Promise<{ path: string; hostPath: string }> {
  const hostPath = await realpath(hostNode);
  const key = (await sha256File(hostPath)).slice(0, 16);
  const dir = join(toolsDir(), `node-${key}`);
  const stripped = join(dir, "node");
  if (!existsSync(stripped)) {
    await ensurePrivateDir(dir);
    const staging = `${stripped}.${process.pid}.tmp`;
    try {
      await execFile("strip", ["--strip-all", "-o", staging, hostPath], { code: "RUNTIME_PREPARE_FAILED" });
      await rename(staging, stripped);
    } finally {
      await rm(staging, { force: true });
    }
  }
  return { path: stripped, hostPath };
}
