import type { Parsed } from "./parsed.ts";

const MIB_PER_UNIT: Record<string, number> = { m: 1, g: 1024 };

/**
 * "128M", "1G", "512Mi", "2GiB", "2GB" or a bare number of MiB. Units are binary whichever spelling is
 * used, because nobody sizing a VM means 10^6 bytes; K and T are refused as implausible for a VM.
 */
export function parseMemoryMiB(text: string): Parsed<number> {
  const m = /^(\d+)\s*(?:([mMgG])(?:i|iB|B)?)?$/.exec(text.trim());
  if (!m) {
    return { ok: false, message: `"${text}" is not a memory size`, hint: "use a size like 256M or 1G, or a whole number of MiB" };
  }
  const unit = (m[2] ?? "m").toLowerCase();
  return { ok: true, value: Number(m[1]) * MIB_PER_UNIT[unit]! };
}

const MS_PER_UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** "500ms", "30s", "2m". A bare number is refused: seconds and milliseconds are both plausible. */
export function parseDurationMs(text: string): Parsed<number> {
  const m = /^(\d+)\s*(ms|s|m)$/.exec(text.trim());
  if (!m) {
    const bare = /^\d+$/.test(text.trim());
    return {
      ok: false,
      message: bare ? `"${text}" has no unit` : `"${text}" is not a duration`,
      hint: bare ? `add a unit, e.g. "${text.trim()}s"` : `use a duration like "500ms", "30s" or "2m"`,
    };
  }
  return { ok: true, value: Number(m[1]) * MS_PER_UNIT[m[2]!]! };
}
