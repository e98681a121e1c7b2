/**
 * One error tree for the whole tool. Every error meant for a user carries a
 * stable `code`, the process exit status it maps to, and a `hint` that tells
 * the user what to do next. Internal bugs stay plain `Error`s and exit with status 70.
 */

export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  verification: 4,
  repository: 5,
  libvirt: 6,
  refused: 7,
  interrupted: 130,
  internal: 70,
} as const;

export interface HvErrorOptions {
  hint?: string;
  cause?: unknown;
}

export class HvError extends Error {
  readonly code: string;
  readonly exitCode: number;
  readonly hint: string | undefined;

  constructor(code: string, message: string, exitCode: number, options: HvErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
    this.hint = options.hint;
  }
}

/** Invalid command-line arguments. */
export class UsageError extends HvError {
  constructor(message: string, options?: HvErrorOptions) {
    super('usage', message, ExitCode.usage, options);
  }
}

/** Invalid or missing configuration: names the key and the fix. */
export class ConfigError extends HvError {
  constructor(message: string, options?: HvErrorOptions) {
    super('config', message, ExitCode.config, options);
  }
}

/** A libvirt or QEMU command failed, or a domain is not in the state needed. */
export class LibvirtError extends HvError {
  constructor(message: string, options?: HvErrorOptions) {
    super('libvirt', message, ExitCode.libvirt, options);
  }
}

/** NBD protocol or transport failure. */
export class NbdError extends HvError {
  constructor(message: string, options?: HvErrorOptions) {
    super('nbd', message, ExitCode.failure, options);
  }
}

/** A tar stream that is malformed, hostile or does not match its manifest. */
export class ArchiveError extends HvError {
  constructor(message: string, options?: HvErrorOptions) {
    super('archive', message, ExitCode.verification, options);
  }
}

/** Key loading, encryption or decryption failed. */
export class CryptoError extends HvError {
  constructor(message: string, options?: HvErrorOptions) {
    super('crypto', message, ExitCode.failure, options);
  }
}

/** A signature, hash or structural check failed: the data must not be trusted. */
export class VerificationError extends HvError {
  /** Name of the failed check, for example `manifest-signature` or `segment-hash`. */
  readonly check: string;
  /** The object the check ran on, for example a repository key. */
  readonly object: string;

  constructor(check: string, object: string, message: string, options?: HvErrorOptions) {
    super('verification', `${check} failed for ${object}: ${message}`, ExitCode.verification, options);
    this.check = check;
    this.object = object;
  }
}

/** Storage backend failure: unreachable, access denied, object missing. */
export class RepositoryError extends HvError {
  constructor(message: string, options?: HvErrorOptions) {
    super('repository', message, ExitCode.repository, options);
  }
}

/** An object that must not be overwritten already exists. */
export class AlreadyExistsError extends RepositoryError {
  readonly key: string;

  constructor(key: string, options?: HvErrorOptions) {
    super(`object ${key} already exists and is never overwritten`, options);
    this.key = key;
  }
}

/** An object that was expected is missing. */
export class NotFoundError extends RepositoryError {
  readonly key: string;

  constructor(key: string, options?: HvErrorOptions) {
    super(`object ${key} not found`, options);
    this.key = key;
  }
}

/** The operation is not allowed for this user or without an explicit flag. */
export class RefusedError extends HvError {
  constructor(message: string, options?: HvErrorOptions) {
    super('refused', message, ExitCode.refused, options);
  }
}

/** The run was interrupted by SIGINT or SIGTERM. */
export class InterruptedError extends HvError {
  constructor(signal: string) {
    super('interrupted', `interrupted by ${signal}`, ExitCode.interrupted);
  }
}

/** Formats an error chain for a terminal: message, causes, hint. */
export function describeError(error: unknown): string {
  const lines: string[] = [];
  let current: unknown = error;
  let depth = 0;

  while (current !== undefined && current !== null && depth < 5) {
    const text = current instanceof Error ? current.message : String(current);
    lines.push(depth === 0 ? text : `  caused by: ${text}`);
    current = current instanceof Error ? current.cause : undefined;
    depth += 1;
  }

  if (error instanceof HvError && error.hint) {
    lines.push(`  hint: ${error.hint}`);
  }
  return lines.join('\n');
}
