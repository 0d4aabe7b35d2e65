import { isScalar } from "yaml";
import type { Ctx, YNode } from "./context.ts";
import { checkRange, expected, readInt } from "./read.ts";
import { parseMemoryMiB } from "./sizes.ts";

export const MIN_MEMORY_MIB = 16;
export const MAX_MEMORY_MIB = 16 * 1024;
export const MAX_VCPUS = 8;

/** `memory`: a size string or a whole number of MiB. */
export function readMemory(ctx: Ctx, node: YNode, at: string): number | undefined {
  const what = 'a size like "512M" or "1G", or a whole number of MiB';
  if (!isScalar(node)) return expected(ctx, node, at, what);
  const { value } = node;
  let mib: number;
  if (typeof value === "number" && Number.isInteger(value)) mib = value;
  else if (typeof value === "string") {
    const parsed = parseMemoryMiB(value);
    if (!parsed.ok) {
      ctx.report(node, at, parsed.message, parsed.hint);
      return undefined;
    }
    mib = parsed.value;
  } else return expected(ctx, node, at, what);

  if (mib >= MIN_MEMORY_MIB && mib <= MAX_MEMORY_MIB) return mib;
  const shown = typeof value === "string" ? value : `${value} MiB`;
  const limit = mib < MIN_MEMORY_MIB ? "below the minimum of 16M" : "above the maximum of 16G";
  ctx.report(node, at, `${shown} is ${limit}`, "use a size between 16M and 16G");
  return undefined;
}

export function readVcpus(ctx: Ctx, node: YNode, at: string): number | undefined {
  const n = readInt(ctx, node, at);
  return n === undefined ? undefined : checkRange(ctx, node, at, n, { min: 1, max: MAX_VCPUS });
}
