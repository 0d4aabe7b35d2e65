import { open, type FileHandle } from "node:fs/promises";

/**
 * Follows a growing file (a machine's console log), handing each new chunk to `onData`, like
 * `tail -f`. Polling keeps it simple and works where fs.watch does not; 50 ms is below what a
 * person notices and costs nothing. The file may be truncated under it (a rotated console):
 * when it is shorter than what was read, following starts again from its beginning.
 * `fromTail` starts that many bytes before the current end instead of at the beginning.
 */
export function followFile(
  path: string,
  onData: (chunk: Buffer) => void,
  intervalMs = 50,
  options: { fromTail?: number } = {},
): { stop(): Promise<void> } {
  let offset: number | undefined;
  let handle: FileHandle | undefined;
  let busy: Promise<void> = Promise.resolve();
  let stopped = false;
  const buffer = Buffer.alloc(64 * 1024);
  const readNew = async (): Promise<void> => {
    handle ??= await open(path, "r").catch(() => undefined);
    if (!handle) return;
    const { size } = await handle.stat();
    if (offset === undefined) offset = options.fromTail === undefined ? 0 : Math.max(0, size - options.fromTail);
    if (size < offset) offset = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      if (bytesRead === 0) return;
      offset += bytesRead;
      // A copy: the buffer is reused for the next read, and the consumer may hold on to the chunk.
      onData(Buffer.from(buffer.subarray(0, bytesRead)));
    }
  };
  const timer = setInterval(() => {
    busy = busy.then(readNew).catch(() => {});
  }, intervalMs);
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      // One last read so nothing written before the stop is lost.
      busy = busy.then(readNew).catch(() => {});
      await busy;
      await handle?.close();
    },
  };
}
