import { userError } from "../shared/errors.ts";

/** What `--tcg-cache` may be: below 16 MiB a Node app's boot translates its code again and again. */
export const TCG_CACHE_MIB = { min: 16, max: 1024 } as const;

export const TCG_CACHE_HELP =
  "TCG translation cache per machine in MiB (default 256; KVM has none): 32 saves ~47 MiB of host memory per idle Node machine and costs its boot ~30% more CPU (bench/density)";

/** `--tcg-cache MIB`, checked: a whole number of MiB within TCG_CACHE_MIB. */
export function parseTcgCacheMiB(text: string): number {
  const mib = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(mib) || mib < TCG_CACHE_MIB.min || mib > TCG_CACHE_MIB.max) {
    throw userError("BAD_FLAG", `--tcg-cache must be a whole number of MiB from ${TCG_CACHE_MIB.min} to ${TCG_CACHE_MIB.max}, got ${text}`);
  }
  return mib;
}
