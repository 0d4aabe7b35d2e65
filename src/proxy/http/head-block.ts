import { MAX_HEAD_BYTES } from "./field-lines.ts";
import { CRLFCRLF } from "./octets.ts";

/** A head (or trailer section) found whole, or the bytes to keep until the next read. */
export type HeadBlock = { block: Buffer; end: number } | { waiting: Buffer };

/**
 * Finds the block that ends at the next blank line, reading `data` from `at` after `partial`
 * (what earlier reads left unfinished). `end` is the offset in `data` just past the blank line.
 * A block that is, or can only become, longer than MAX_HEAD_BYTES throws `tooLarge()`: a peer
 * cannot make the parser buffer more than that, however it splits its bytes.
 */
export function findHeadBlock(partial: Buffer | undefined, data: Buffer, at: number, tooLarge: () => Error): HeadBlock {
  if (!partial) {
    const found = data.indexOf(CRLFCRLF, at);
    if (found < 0 || found - at > MAX_HEAD_BYTES) {
      if (data.length - at > MAX_HEAD_BYTES) throw tooLarge();
      // A copy: `data` may be a buffer its reader reuses for the next read.
      return { waiting: Buffer.from(data.subarray(at)) };
    }
    return { block: data.subarray(at, found), end: found + 4 };
  }
  const joined = Buffer.concat([partial, data.subarray(at)]);
  // The blank line may have begun in the earlier bytes.
  const found = joined.indexOf(CRLFCRLF, Math.max(0, partial.length - 3));
  if (found < 0 || found > MAX_HEAD_BYTES) {
    if (joined.length > MAX_HEAD_BYTES) throw tooLarge();
    return { waiting: joined };
  }
  return { block: joined.subarray(0, found), end: at + found + 4 - partial.length };
}
