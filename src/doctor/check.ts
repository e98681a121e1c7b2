/**
 * The result type every doctor check returns, and the wrapper that turns a
 * check that throws or hangs into a FAIL line instead of ending the run.
 */
import { describeError, HvError } from '../errors.js';

/** Outcome of a check. Only FAIL makes doctor exit 1, and it means a backup or restore would fail. WARN names a limit or a risk. */
export type CheckStatus = 'ok' | 'info' | 'warn' | 'fail';

export interface CheckResult {
  /** Stable name such as `tools.qemu-img` or `domain web1: disk vda format`, for scripts and tests. */
  name: string;
  status: CheckStatus;
  /** Description of what was checked and what was found. */
  detail: string;
  /** Remedy, with the exact command where one exists. Set for every WARN and FAIL. */
  fix?: string;
}

export function ok(name: string, detail: string): CheckResult {
  return { name, status: 'ok', detail };
}

export function info(name: string, detail: string): CheckResult {
  return { name, status: 'info', detail };
}

export function warn(name: string, detail: string, fix: string): CheckResult {
  return { name, status: 'warn', detail, fix };
}

export function fail(name: string, detail: string, fix: string): CheckResult {
  return { name, status: 'fail', detail, fix };
}

/** Time one check may take before it is reported as failed. A virsh call or S3 request that hangs must not hang doctor. */
export const CHECK_TIMEOUT_MS = 60_000;

/**
 * Runs one check body. An exception becomes a FAIL line carrying the error's
 * message and hint, and a body that takes longer than `timeoutMs` becomes a
 * FAIL line too.
 */
export async function runCheck(
  name: string,
  body: () => Promise<CheckResult | CheckResult[]>,
  timeoutMs = CHECK_TIMEOUT_MS,
): Promise<CheckResult[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(
      () => resolve(fail(name, `no result within ${Math.round(timeoutMs / 1000)} s`, 'run the step by hand to see where it hangs; hvbackup doctor --verbose logs each step')),
      timeoutMs,
    );
    timer.unref();
  });

  try {
    const result = await Promise.race([body(), timeout]);
    return Array.isArray(result) ? result : [result];
  } catch (error) {
    return [failureOf(name, error)];
  } finally {
    clearTimeout(timer);
  }
}

/** Turns an error into a FAIL line: the message without its hint, and the hint as the fix. */
export function failureOf(name: string, error: unknown, fallbackFix = 'run with --verbose and read the error above'): CheckResult {
  if (error instanceof HvError) {
    return fail(name, error.message, error.hint ?? fallbackFix);
  }
  return fail(name, describeError(error), fallbackFix);
}

/** Returns true when any result failed. */
export function anyFailed(results: CheckResult[]): boolean {
  return results.some((result) => result.status === 'fail');
}
