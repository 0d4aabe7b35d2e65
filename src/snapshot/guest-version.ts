import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { sha256 } from "../shared/hash.ts";
import { pithRoot } from "../shared/paths.ts";

/**
 * Bump when what a restored machine is told changes meaning (the host-to-init restore lines):
 * snapshots of older machines then stop matching, even with the same sources.
 */
const RESTORE_PROTOCOL = 1;

/** The guest side's sources: a snapshot holds a running init and guest library from them. */
const GUEST_SOURCES = ["src/guest/init/init.c", "src/guest/index.ts"];

let cached: Promise<string> | undefined;

/** A hash of Pith's guest side (init and the guest library), part of every snapshot's key. */
export function guestVersion(): Promise<string> {
  cached ??= Promise.all(GUEST_SOURCES.map((f) => readFile(join(pithRoot(), f)))).then((files) =>
    sha256(Buffer.concat([Buffer.from(`restore-protocol ${RESTORE_PROTOCOL}\n`), ...files])).slice(0, 16),
  );
  return cached;
}
