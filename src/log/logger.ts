/**
 * Structured logging. Every event is one JSON object per line on stderr
 * (journald and SIEMs ingest that as is), with the fields `domain`,
 * `backupId`, `phase`, `bytes`, `durationMs` and `err` where they apply.
 * On a terminal the same events are printed as short human lines instead.
 * Results meant for scripts go to stdout, never through the logger.
 */
import { Writable } from 'node:stream';

import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export type LogFormat = 'json' | 'human';

export interface LoggerOptions {
  format?: LogFormat;
  level?: string;
  destination?: NodeJS.WritableStream;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const HIDDEN_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

/** Renders one pino JSON line as `HH:MM:SS LEVEL message key=value ...`. */
export function formatHumanLine(line: string): string {
  let event: Record<string, unknown>;
  try {
    event = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }

  const stamp = typeof event.time === 'number' || typeof event.time === 'string' ? event.time : Date.now();
  const time = new Date(stamp).toISOString().slice(11, 19);
  const level = LEVEL_NAMES[event.level as number] ?? String(event.level);
  const fields = Object.entries(event)
    .filter(([key]) => !HIDDEN_FIELDS.has(key))
    .map(([key, value]) => {
      if (key === 'err' && value && typeof value === 'object') return `error=${JSON.stringify((value as { message?: string }).message)}`;
      return `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`;
    });
  return `${time} ${level.padEnd(5)} ${String(event.msg ?? '')}${fields.length ? ' ' + fields.join(' ') : ''}\n`;
}

function humanStream(destination: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line) destination.write(formatHumanLine(line));
      }
      callback();
    },
  });
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? process.stderr;
  const format = options.format ?? ((destination as NodeJS.WriteStream).isTTY ? 'human' : 'json');
  const level = options.level ?? process.env.HVBACKUP_LOG_LEVEL ?? 'info';

  const stream = format === 'human' ? humanStream(destination) : destination;
  return pino(
    {
      level,
      base: { name: 'hvbackup' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Redaction is a second line of defence: nothing secret should reach a log call at all.
      redact: { paths: ['passphrase', '*.passphrase', 'secretAccessKey', '*.secretAccessKey', 'credentials'], censor: '[redacted]' },
    },
    stream as NodeJS.WritableStream as pino.DestinationStream,
  );
}

/** A logger that drops everything, for library callers that pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
