import { open, stat } from "node:fs/promises";
import { Readable } from "node:stream";

/**
 * Bounded reads of a log that is rotated by copy-and-truncate (a machine's console, see
 * hypervisor/qemu/console-log.ts): the newest bytes, from the end of `<path>.1` and then `<path>`,
 * never the whole of either.
 */

/** How much of a log a reader gets at most (the API's console, `pith logs`, a follow's start). */
export const LOG_TAIL_BYTES = 256 * 1024;

export const rotatedPath = (path: string): string => `${path}.1`;

/**
 * The last `maxBytes` of a log: from the end of `<path>.1` and then `<path>`, as a
 * stream. A missing file is an empty log.
 */
export function readLogTail(path: string, maxBytes = LOG_TAIL_BYTES): Readable {
  return Readable.from(tailChunks(path, maxBytes));
}

async function* tailChunks(path: string, maxBytes: number): AsyncGenerator<Buffer> {
  const current = await sizeOf(path);
  const fromRotated = Math.max(0, maxBytes - current);
  if (fromRotated > 0) yield* fileTail(rotatedPath(path), fromRotated);
  yield* fileTail(path, Math.min(current, maxBytes));
}

async function* fileTail(path: string, maxBytes: number): AsyncGenerator<Buffer> {
  const handle = await open(path, "r").catch(() => undefined);
  if (!handle) return;
  try {
    const { size } = await handle.stat();
    // At most maxBytes, from where the tail started, even if the file grows (or shrinks) meanwhile.
    let position = Math.max(0, size - maxBytes);
    let left = Math.min(size, maxBytes);
    while (left > 0) {
      const buffer = Buffer.alloc(Math.min(left, 64 * 1024));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) return;
      position += bytesRead;
      left -= bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

const sizeOf = (path: string): Promise<number> => stat(path).then((s) => s.size, () => 0);

/** The tail as text, for looking through (a kernel panic in a dead machine's console). */
export async function logTailText(path: string, maxBytes = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of tailChunks(path, maxBytes)) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}
