/**
 * A decoder for LZ4's legacy frame format, the one Linux compresses a bzImage's kernel with
 * (CONFIG_KERNEL_LZ4, Debian's choice): magic 0x184C2102, then blocks, each a little-endian
 * 32-bit compressed length and an LZ4 block that decodes to at most 8 MiB. Written here so the
 * boot bench needs no `lz4` program to unpack Debian's kernel; every read is bounds-checked, so
 * damaged input gives an error, never a hang or a read past the end.
 */

export const LZ4_LEGACY_MAGIC = 0x184c2102;
const LEGACY_BLOCK_MAX = 8 << 20;
/** Far above any kernel (Debian's: 53 MB); a frame decoding to more is refused, not decoded. */
export const LZ4_OUTPUT_LIMIT = 512 << 20;
const MIN_MATCH = 4;

/**
 * Decodes a legacy frame from the start of `input`. Blocks are read while a whole block fits in
 * what is left; the kernel's build appends the decoded size (4 bytes) after the last block, which
 * is why a trailing remainder shorter than a block is not an error: it is returned as `trailer`.
 */
export function decodeLz4Legacy(input: Uint8Array, maxBytes = LZ4_OUTPUT_LIMIT): { data: Buffer; trailer: Uint8Array } {
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  if (input.length < 4 || view.getUint32(0, true) !== LZ4_LEGACY_MAGIC) throw new Error("not an LZ4 legacy frame (no 0x184C2102 magic)");
  const blocks: Buffer[] = [];
  let total = 0;
  let at = 4;
  while (at + 4 <= input.length) {
    const length = view.getUint32(at, true);
    // A second frame may follow the first, magic and all (lz4 concatenates them so).
    if (length === LZ4_LEGACY_MAGIC) {
      at += 4;
      continue;
    }
    if (length === 0 || at + 4 + length > input.length) break;
    const block = decodeLz4Block(input.subarray(at + 4, at + 4 + length), Math.min(LEGACY_BLOCK_MAX, maxBytes - total));
    blocks.push(block);
    total += block.length;
    at += 4 + length;
  }
  if (blocks.length === 0) throw new Error("LZ4 legacy frame holds no block");
  return { data: Buffer.concat(blocks), trailer: input.subarray(at) };
}

/** One LZ4 block (sequences of literals and back-references) into at most `limit` bytes. */
export function decodeLz4Block(block: Uint8Array, limit: number): Buffer {
  const out = Buffer.allocUnsafe(limit);
  let i = 0;
  let o = 0;
  const fail = (what: string): never => {
    throw new Error(`damaged LZ4 block: ${what} (at input byte ${i} of ${block.length}, output byte ${o})`);
  };
  const extendedLength = (base: number): number => {
    let length = base;
    if (base !== 15) return length;
    for (;;) {
      if (i >= block.length) fail("length runs past the end");
      const b = block[i++]!;
      length += b;
      if (b !== 255) return length;
    }
  };
  while (i < block.length) {
    const token = block[i++]!;
    const literals = extendedLength(token >> 4);
    if (i + literals > block.length) fail("literals run past the end");
    if (o + literals > limit) fail(`output over ${limit} bytes`);
    out.set(block.subarray(i, i + literals), o);
    i += literals;
    o += literals;
    // The last sequence is literals only.
    if (i === block.length) break;
    if (i + 2 > block.length) fail("match offset runs past the end");
    const offset = block[i]! | (block[i + 1]! << 8);
    i += 2;
    if (offset === 0 || offset > o) fail(`match offset ${offset} points before the output`);
    const length = extendedLength(token & 15) + MIN_MATCH;
    if (o + length > limit) fail(`output over ${limit} bytes`);
    // Byte by byte: a match may overlap what it is writing (offset < length repeats a pattern).
    for (let from = o - offset, end = o + length; o < end; ) out[o++] = out[from++]!;
  }
  return out.subarray(0, o);
}
