import { homedir } from "node:os";
import { join } from "node:path";

/**
 * Pith keeps everything it builds under one directory, PITH_HOME (default ~/.pith): kernels
 * cached by config hash, images by digest, and per-machine runtime state. Deleting it loses only
 * caches and stopped machines' logs.
 */
export function pithHome(): string {
  return process.env.PITH_HOME ?? join(homedir(), ".pith");
}

export const kernelCacheDir = (): string => join(pithHome(), "kernel");
export const imageStoreDir = (): string => join(pithHome(), "images");
export const machinesDir = (): string => join(pithHome(), "machines");
export const toolsDir = (): string => join(pithHome(), "tools");

/** The repository root, for assets that ship with Pith (kernel fragments, init source). */
export const pithRoot = (): string => new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
