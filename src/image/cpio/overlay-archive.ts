import { appendFile, copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeCpio } from "./newc-writer.ts";

/**
 * Writes `out`: the initramfs `base`, then a second archive holding `files` (guest path -> bytes).
 * The kernel unpacks concatenated archives in order, so these files replace or join the base's.
 * For measurements and tests that vary one file of a built image (its argv, a damaged cache)
 * without building another: the image's record still describes the base.
 */
export async function overlayInitramfs(base: string, files: ReadonlyMap<string, Uint8Array>, out: string): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "pith-overlay-"));
  try {
    const overlay = join(work, "overlay.cpio");
    await writeCpio([...files].map(([path, data]) => ({ path: path.replace(/^\//, ""), kind: "file", mode: 0o644, data })), overlay);
    await copyFile(base, out);
    await appendFile(out, await readFile(overlay));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
