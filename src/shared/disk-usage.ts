import { execFile } from "./exec.ts";

/** Bytes a file or directory tree takes on disk (`du -sb`): what removing it would free. */
export async function diskBytes(path: string): Promise<number> {
  const { stdout } = await execFile("du", ["-sb", path], { code: "DISK_USAGE" });
  return Number(stdout.split("\t")[0]) || 0;
}
