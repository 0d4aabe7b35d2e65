import { createWriteStream, fchmodSync, openSync, renameSync, statSync, type WriteStream } from "node:fs";
import { rotatedPath } from "./file-tail.ts";
import { PRIVATE_FILE_MODE } from "./private-files.ts";

/** A log Pith writes line by line (the proxy's access log): `<path>` and one older `<path>.1`. */
export interface RotatingLog {
  write(line: string): void;
  close(): Promise<void>;
}

/** Past this, a log is moved to `<path>.1` (replacing the older one) and starts again. */
export const ROTATING_LOG_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Appends lines to a 0600 file and rotates it past `maxBytes`, so a log whose lines clients cause
 * (one per proxied request) takes at most twice that on disk. The old stream finishes its queued
 * writes into the renamed file: its descriptor, not its name, is what it writes to.
 * `onError` hears a log that cannot be written; the writer loses lines (until the next turn, when
 * it tries to open the file again), never its process.
 */
export function openRotatingLog(path: string, onError: (e: Error) => void, maxBytes = ROTATING_LOG_MAX_BYTES): RotatingLog {
  let bytes = sizeOf(path);
  let stream = open(path, onError);
  return {
    write(line) {
      if (bytes > 0 && bytes + Buffer.byteLength(line) > maxBytes) {
        if (stream) {
          stream.end();
          try {
            renameSync(path, rotatedPath(path));
          } catch (e) {
            onError(e as Error);
          }
        }
        stream = open(path, onError);
        bytes = 0;
      }
      bytes += Buffer.byteLength(line);
      stream?.write(line);
    },
    close: () => new Promise<void>((resolve) => (stream ? stream.end(resolve) : resolve())),
  };
}

/** Opened at once (not when the stream gets to it), so the file exists when it is renamed. */
function open(path: string, onError: (e: Error) => void): WriteStream | undefined {
  try {
    const fd = openSync(path, "a", PRIVATE_FILE_MODE);
    fchmodSync(fd, PRIVATE_FILE_MODE); // a file made looser by someone else
    // An unheard 'error' on a stream would end the process.
    return createWriteStream("", { fd }).on("error", onError);
  } catch (e) {
    onError(e as Error);
    return undefined;
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
