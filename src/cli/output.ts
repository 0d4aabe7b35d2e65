import { isPithError } from "../shared/errors.ts";

/** Prints an error the way a person can act on: what happened, then how to fix it. */
export function printError(e: unknown): void {
  if (isPithError(e)) {
    process.stderr.write(`error: ${e.message}\n`);
    if (e.hint) process.stderr.write(`  fix: ${e.hint}\n`);
    if (e.kind === "system" && process.env.PITH_DEBUG && e.stack) process.stderr.write(`${e.stack}\n`);
    return;
  }
  const err = e as Error;
  process.stderr.write(`error: ${err?.message ?? String(e)}\n`);
  if (process.env.PITH_DEBUG && err?.stack) process.stderr.write(`${err.stack}\n`);
}

/** A plain table like kubectl's: upper-case headers, columns padded to the widest cell. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("   ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}
