/**
 * What every command shares: loading the configuration, a logger, a signal
 * that SIGINT and SIGTERM abort, and one mapping from errors to exit codes.
 */
import { configPath, loadConfig, type Config } from '../config/load.js';
import { describeError, ExitCode, HvError, InterruptedError } from '../errors.js';
import { createLogger, type LogFormat, type Logger } from '../log/logger.js';

export interface GlobalOptions {
  config?: string;
  logFormat?: LogFormat;
  verbose?: boolean;
}

export interface CommandEnvironment {
  logger: Logger;
  signal: AbortSignal;
  loadConfig(): Promise<Config>;
}

/**
 * Runs a command body with signal handling. The first SIGINT/SIGTERM aborts
 * the shared signal so every stage releases what it holds in its `finally`;
 * a second one exits at once.
 */
export async function runCommand(global: GlobalOptions, body: (env: CommandEnvironment) => Promise<number | void>): Promise<number> {
  const logger = createLogger({ format: global.logFormat, level: global.verbose ? 'debug' : undefined });
  const controller = new AbortController();
  let interruptedBy: string | undefined;

  const onSignal = (signal: NodeJS.Signals) => {
    if (interruptedBy) {
      logger.error({ signal }, 'second signal received, exiting without cleanup');
      process.exit(ExitCode.interrupted);
    }
    interruptedBy = signal;
    logger.warn({ signal }, 'interrupted, cleaning up');
    controller.abort(new InterruptedError(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const result = await body({
      logger,
      signal: controller.signal,
      loadConfig: () => loadConfig(configPath(global.config)),
    });
    const code = result ?? ExitCode.ok;
    if (interruptedBy && code === ExitCode.ok) {
      // The signal arrived where the work could no longer stop, for example
      // after a backup's manifest was written or during a restore's last
      // promotion step. The work is complete, so saying "interrupted" would be wrong.
      logger.warn({ signal: interruptedBy }, `${interruptedBy} arrived too late to stop the command, which finished its work`);
      return ExitCode.ok;
    }
    if (interruptedBy) return ExitCode.interrupted;
    return code;
  } catch (error) {
    if (interruptedBy) {
      logger.error({ signal: interruptedBy }, `interrupted by ${interruptedBy}; nothing was committed`);
      return ExitCode.interrupted;
    }
    return reportError(error, logger);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Prints an error for the user and returns its exit code. Unknown errors are bugs: they get a stack trace. */
export function reportError(error: unknown, logger: Logger): number {
  if (error instanceof HvError) {
    logger.error({ code: error.code }, describeError(error));
    return error.exitCode;
  }
  logger.error({ err: error }, `internal error: ${describeError(error)}`);
  return ExitCode.internal;
}
