import { open, type FileHandle } from "node:fs/promises";

/**
 * Follows a growing file (a machine's console log), handing each new chunk to `onData`, like
 * `tail -f`. Polling keeps it simple and works where fs.watch does not; 50 ms is below what a
 * person notices and costs nothing.
 */
export function followFile(path: string, onData: (chunk: Buffer) => void, intervalMs = 50): { stop(): Promise<void> } {
  let offset = 0;
  let handle: FileHandle | undefined;
  let busy: Promise<void> = Promise.resolve();
  let stopped = false;
  const readNew = async (): Promise<void> => {
    handle ??= await open(path, "r").catch(() => undefined);
    if (!handle) return;
    for (;;) {
      const buffer = Buffer.alloc(64 * 1024);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      if (bytesRead === 0) return;
      offset += bytesRead;
      onData(buffer.subarray(0, bytesRead));
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
