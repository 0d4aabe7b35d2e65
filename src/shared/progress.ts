/**
 * Progress for long work (kernel builds, image packing). On a terminal it redraws one line; in
 * a log (CI, tests) it prints a line at most every `logEverySeconds` so a 10-minute build still
 * shows it is alive without flooding the output.
 */
export interface Progress {
  update(fraction: number, detail: string): void;
  done(detail: string): void;
}

export const silentProgress: Progress = { update() {}, done() {} };

export function streamProgress(label: string, stream: NodeJS.WriteStream = process.stderr, logEverySeconds = 30): Progress {
  const started = Date.now();
  let lastLogged = 0;
  const elapsed = (): string => formatSeconds((Date.now() - started) / 1000);
  return {
    update(fraction, detail) {
      const pct = Math.max(0, Math.min(100, Math.floor(fraction * 100)));
      if (stream.isTTY) {
        const width = 24;
        const filled = Math.round((pct / 100) * width);
        const bar = "=".repeat(filled) + " ".repeat(width - filled);
        stream.write(`\r\x1b[2K${label} [${bar}] ${String(pct).padStart(3)}% ${detail} (${elapsed()})`);
        return;
      }
      const now = Date.now();
      if (now - lastLogged >= logEverySeconds * 1000) {
        lastLogged = now;
        stream.write(`${label}: ${pct}% ${detail} (${elapsed()})\n`);
      }
    },
    done(detail) {
      stream.write(`${stream.isTTY ? "\r\x1b[2K" : ""}${label}: ${detail} (${elapsed()})\n`);
    },
  };
}

export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const m = Math.floor(seconds / 60);
  return `${m}m${String(Math.round(seconds - m * 60)).padStart(2, "0")}s`;
}
