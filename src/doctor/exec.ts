/** Runs one external program for a check and returns its output, with English messages. */
import { execFile } from 'node:child_process';

export interface ExecResult {
  /** Exit status; null when the program was killed or could not start. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the program is not installed (ENOENT). */
  missing: boolean;
}

/** Runs `file args` without a shell. A failure to start, a timeout or a non-zero exit is returned in the result, not thrown. */
export function execProgram(file: string, args: string[], options: { timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { env: { ...process.env, LC_ALL: 'C' }, timeout: options.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (!error) {
          resolve({ code: 0, stdout, stderr, missing: false });
          return;
        }
        const code = typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr: stderr || error.message, missing: error.code === 'ENOENT' });
      },
    );
  });
}

/** Returns the first line of a program's output without a leading `error: `, for a one-line detail. */
export function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.replace(/^error: /, '') ?? '';
}
