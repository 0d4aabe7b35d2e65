import { createRequire } from "node:module";

let minorGc: (() => void) | undefined;

/**
 * A minor GC (a scavenge) now, so that V8's young generation is empty when the machine is frozen
 * (a snapshot saved, a warm machine paused). Otherwise a scavenge is likely to fall due on the
 * first requests after the restore or claim, and under emulation a scavenge of a few MB, its code
 * not yet translated by that QEMU, took 45-70 ms (bench/README.md, warm pool).
 *
 * Node offers no GC without --expose-gc. Setting the flag at run time makes a new context's `gc`,
 * and the flag is set back at once: V8 refuses its code cache (node's builtin modules, loaded
 * lazily later) while any V8 flag differs from how the process started.
 */
export function scavenge(): void {
  if (!minorGc) {
    const load = createRequire(import.meta.url);
    const v8 = load("node:v8") as typeof import("node:v8");
    const vm = load("node:vm") as typeof import("node:vm");
    v8.setFlagsFromString("--expose-gc");
    try {
      const gc = vm.runInNewContext("gc") as (options: { type: "minor" | "major"; execution: "sync" | "async" }) => void;
      minorGc = () => gc({ type: "minor", execution: "sync" });
    } finally {
      v8.setFlagsFromString("--no-expose-gc");
    }
  }
  minorGc();
}
