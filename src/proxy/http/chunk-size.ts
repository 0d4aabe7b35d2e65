import type { HeadError } from "./field-lines.ts";
import { CR } from "./octets.ts";

/** The longest chunk-size line (the size and any extensions) either parser reads. */
export const MAX_CHUNK_LINE = 1024;
/** A size of at most 13 hex digits (below 2^53), then optional whitespace and extensions. */
const CHUNK_LINE = /^([0-9A-Fa-f]{1,13})[\t ]*(?:;[\t\x20-\x7e\x80-\xff]*)?$/;

/** The size a chunk-size line (with its CRLF) declares; extensions are accepted and ignored. */
export function chunkSize(line: Buffer, error: HeadError): number {
  if (line.length < 2 || line[line.length - 2] !== CR) throw error("chunk-size line not ended by CRLF");
  const text = line.toString("latin1", 0, line.length - 2);
  const match = CHUNK_LINE.exec(text);
  if (!match) throw error(`malformed chunk-size line: ${JSON.stringify(text.slice(0, 40))}`);
  return Number.parseInt(match[1] as string, 16);
}
