import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { sha256 } from "../shared/hash.ts";
import { pithRoot } from "../shared/paths.ts";

/**
 * Bump when what a restored machine is told changes meaning (the host-to-init restore lines):
 * snapshots of older machines then stop matching, even with the same sources.
 */
const RESTORE_PROTOCOL = 1;

/**
 * The guest side's sources, which a snapshot holds running: init, and every file of the guest
 * library (not its tests), so that a change to any of them is a new snapshot key.
 */
export async function guestSources(): Promise<string[]> {
  const library = (await readdir(join(pithRoot(), "src/guest"))).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts")).sort();
  return ["src/guest/init/init.c", ...library.map((f) => `src/guest/${f}`)];
}

let cached: Promise<string> | undefined;

/** A hash of Pith's guest side (init and the guest library), part of every snapshot's key. */
export function guestVersion(): Promise<string> {
  cached ??= guestSources()
    .then((sources) => Promise.all(sources.map(async (f) => [Buffer.from(`${f}\n`), await readFile(join(pithRoot(), f))])))
    .then((files) => sha256(Buffer.concat([Buffer.from(`restore-protocol ${RESTORE_PROTOCOL}\n`), ...files.flat()])).slice(0, 16));
  return cached;
}
