import { MAX_HEAD_BYTES, scanFields, type HeadError } from "./field-lines.ts";
import { CR, CRLFCRLF, LF } from "./octets.ts";

/**
 * A head found whole (`head`, its text without the blank line), the end of a trailer section
 * (checked, then dropped: a message goes on framed anew), or the bytes to keep until the next read.
 */
export type HeadBlock = { end: number; head?: string } | { waiting: Buffer };

/**
 * Reads the block that ends at the next blank line, from `at` in `data` after `partial` (what
 * earlier reads left unfinished; after a chunked body's last chunk the parsers keep its CRLF
 * there, so a blank line right after it is an empty trailer section). `end` is the offset in
 * `data` just past the blank line. A block that is, or can only become, longer than
 * MAX_HEAD_BYTES throws `tooLarge()`: a peer cannot make a parser buffer more than that, however
 * it splits its bytes. Trailers are checked with `error` for what is malformed.
 */
export function readHeadBlock(partial: Buffer | undefined, data: Buffer, at: number, trailers: boolean, tooLarge: () => Error, error: HeadError): HeadBlock {
  const found = findBlock(partial, data, at, tooLarge);
  if ("waiting" in found) return found;
  if (!trailers) return { end: found.end, head: found.block.toString("latin1") };
  // The block is "" (no trailers) or "\r\nName: value..." (the CRLF kept after the last chunk).
  if (found.block.length > 0) scanFields(found.block.toString("latin1", 2), 0, [], "the trailers", error);
  return { end: found.end };
}

const NOTHING = Buffer.alloc(0);

function findBlock(partial: Buffer | undefined, data: Buffer, at: number, tooLarge: () => Error): { block: Buffer; end: number } | { waiting: Buffer } {
  if (!partial) {
    const found = data.indexOf(CRLFCRLF, at);
    if (found < 0 || found - at > MAX_HEAD_BYTES) {
      if (data.length - at > MAX_HEAD_BYTES) throw tooLarge();
      // A copy: `data` may be a buffer its reader reuses for the next read.
      return { waiting: Buffer.from(data.subarray(at)) };
    }
    return { block: data.subarray(at, found), end: found + 4 };
  }
  // The common end of a chunked body, no trailers: the kept CRLF, then CRLF. No copy.
  if (partial.length === 2 && partial[0] === CR && partial[1] === LF && data.length - at >= 2 && data[at] === CR && data[at + 1] === LF) {
    return { block: NOTHING, end: at + 2 };
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
