import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { kernelCacheDir } from "../shared/paths.ts";
import { ensurePrivateDir } from "../shared/private-files.ts";

/**
 * Kernel builds go through ccache when the host has it (Debian's `ccache`), so a new capability
 * set recompiles only the files its options change: ccache keys an object by the compiler and the
 * preprocessed source, and an option a file never tests leaves that file's preprocessed text
 * unchanged. A hit returns the bytes a compile would produce, so the kernel is the same as a clean
 * build's (bench/kernel checks it). `PITH_KERNEL_CCACHE=off` builds without it.
 */
export interface CompilerCache {
  /** Extra `make` arguments: the compiler, wrapped. */
  makeArgs: string[];
  env: Record<string, string>;
  /** How many compiles of this build the cache answered. */
  usage(): Promise<CompilerCacheUsage>;
  /** Removes this build's statistics log. */
  release(): Promise<void>;
}

export interface CompilerCacheUsage {
  compiles: number;
  hits: number;
}

const CCACHE = "/usr/bin/ccache";
/** Objects of a few kernel configurations fit many times over; ccache evicts the oldest beyond it. */
const MAX_SIZE = "2G";

export const compilerCacheDir = (): string => join(kernelCacheDir(), "ccache");

export function compilerCacheEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.PITH_KERNEL_CCACHE !== "off" && existsSync(CCACHE);
}

/** A compiler cache for one build in `workDir`, or undefined when ccache is off or absent. */
export async function compilerCacheFor(workDir: string, dir = compilerCacheDir()): Promise<CompilerCache | undefined> {
  if (!compilerCacheEnabled()) return undefined;
  await ensurePrivateDir(dir);
  const statsLog = join(workDir, "ccache-stats.log");
  return {
    makeArgs: [`CC=${CCACHE} gcc`],
    env: {
      CCACHE_DIR: dir,
      CCACHE_MAXSIZE: MAX_SIZE,
      // Build trees are named per build; paths under them are compared relative to the build.
      CCACHE_BASEDIR: join(kernelCacheDir(), "build"),
      CCACHE_NOHASHDIR: "true",
      CCACHE_STATSLOG: statsLog,
    },
    usage: () => readUsage(statsLog),
    release: () => rm(statsLog, { force: true }),
  };
}

/** Counts the compiles in a ccache statistics log ("# file" headers, then that call's counters). */
export function parseStatsLog(text: string): CompilerCacheUsage {
  let compiles = 0;
  let hits = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("# ")) compiles++;
    else if (line === "direct_cache_hit" || line === "preprocessed_cache_hit") hits++;
  }
  return { compiles, hits };
}

async function readUsage(statsLog: string): Promise<CompilerCacheUsage> {
  const text = await readFile(statsLog, "utf8").catch(() => "");
  return parseStatsLog(text);
}
