/**
 * Progress of long work (backup, restore, verify). Core code reports bytes to
 * a Progress; the command line draws a bar with throughput and ETA on a
 * terminal and draws nothing when stderr is not a terminal, so logs stay clean.
 */

export interface ProgressTask {
  advance(bytes: number): void;
  finish(): void;
}

export interface Progress {
  start(label: string, totalBytes: number): ProgressTask;
}

const MIB = 1024 * 1024;
const REDRAW_MS = 200;

/** Draws one status line on a terminal stream, rewritten in place. */
export class TerminalProgress implements Progress {
  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  start(label: string, totalBytes: number): ProgressTask {
    const stream = this.stream;
    const startedAt = Date.now();
    let done = 0;
    let lastDraw = 0;

    const draw = (final: boolean) => {
      const now = Date.now();
      if (!final && now - lastDraw < REDRAW_MS) return;
      lastDraw = now;

      const seconds = Math.max((now - startedAt) / 1000, 0.001);
      const rate = done / seconds;
      const fraction = totalBytes > 0 ? Math.min(done / totalBytes, 1) : 1;
      const width = 24;
      const filled = Math.round(fraction * width);
      const eta = rate > 0 && totalBytes > done ? Math.round((totalBytes - done) / rate) : 0;
      const line =
        `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` +
        `${(done / MIB).toFixed(0)}/${(totalBytes / MIB).toFixed(0)} MiB ` +
        `${(rate / MIB).toFixed(1)} MiB/s` +
        (final ? ` in ${seconds.toFixed(1)} s` : ` ETA ${eta} s`);
      stream.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    };

    return {
      advance(bytes: number) {
        done += bytes;
        draw(false);
      },
      finish() {
        draw(true);
      },
    };
  }
}

/** Returns a terminal progress bar when the stream is a TTY, else nothing. */
export function progressFor(stream: NodeJS.WriteStream = process.stderr): Progress | undefined {
  return stream.isTTY ? new TerminalProgress(stream) : undefined;
}
