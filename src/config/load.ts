import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';

import { ConfigError } from '../errors.js';
import { parseByteSize } from '../segment/size.js';
import { configSchema, type ParsedConfig } from './schema.js';

export const DEFAULT_CONFIG_PATH = '/etc/hvbackup/config.json';

/** A validated configuration with every path absolute and every size in bytes. */
export interface Config extends Omit<ParsedConfig, 'segmentSize' | 'host' | 'bandwidthLimit'> {
  host: string;
  segmentSize: number;
  /** Bytes per second, or undefined for no limit. */
  bandwidthLimit: number | undefined;
  /** The file this configuration was read from. */
  path: string;
}

/** Picks the configuration file: the --config option, then HVBACKUP_CONFIG, then the default path. */
export function configPath(option?: string): string {
  return option ?? process.env.HVBACKUP_CONFIG ?? DEFAULT_CONFIG_PATH;
}

/** Reads, parses and validates a configuration file. Relative paths inside it are taken relative to the file. */
export async function loadConfig(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const hint =
      code === 'ENOENT'
        ? `create it (see docs/configuration.md) or pass --config FILE`
        : `check that the file is readable by this user`;
    throw new ConfigError(`cannot read configuration file ${path}: ${code ?? (error as Error).message}`, { hint, cause: error });
  }

  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`configuration file ${path} is not valid JSON: ${(error as Error).message}`, {
      hint: 'fix the JSON syntax; `node -e "JSON.parse(require(\'fs\').readFileSync(process.argv[1]))" FILE` shows the position',
      cause: error,
    });
  }

  return validateConfig(raw, path);
}

/** Validates an already parsed configuration object; `path` names it in errors and anchors relative paths. */
export function validateConfig(raw: unknown, path: string): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(`invalid configuration in ${path}:\n${formatIssues(result.error, raw)}`, {
      hint: 'fix the keys listed above; docs/configuration.md lists every key with its type and default',
    });
  }

  const parsed = result.data;
  const base = dirname(resolve(path));
  const absolute = (value: string) => (isAbsolute(value) ? value : resolve(base, value));

  let segmentSize: number;
  try {
    segmentSize =
      typeof parsed.segmentSize === 'number' ? parsed.segmentSize : parseByteSize(parsed.segmentSize, 'segmentSize');
  } catch (error) {
    throw new ConfigError(`invalid configuration in ${path}: segmentSize: ${(error as Error).message}`, { cause: error });
  }
  if (segmentSize < 1024 * 1024 || segmentSize > 1024 * 1024 * 1024) {
    throw new ConfigError(
      `invalid configuration in ${path}: segmentSize ${segmentSize} is outside 1 MiB to 1 GiB`,
      { hint: 'use a size such as "16MiB"; larger segments need more memory, smaller ones more requests' },
    );
  }

  let bandwidthLimit: number | undefined;
  try {
    bandwidthLimit =
      parsed.bandwidthLimit === undefined || typeof parsed.bandwidthLimit === 'number'
        ? parsed.bandwidthLimit
        : parseByteSize(parsed.bandwidthLimit, 'bandwidthLimit');
  } catch (error) {
    throw new ConfigError(`invalid configuration in ${path}: bandwidthLimit: ${(error as Error).message}`, { cause: error });
  }

  const repository =
    parsed.repository.type === 'local' ? { ...parsed.repository, path: absolute(parsed.repository.path) } : parsed.repository;

  return {
    ...parsed,
    path,
    host: parsed.host ?? hostname().split('.')[0],
    repository,
    segmentSize,
    bandwidthLimit,
    scratchDir: absolute(parsed.scratchDir),
    stagingDir: absolute(parsed.stagingDir),
    stateDir: absolute(parsed.stateDir),
    signingKey: parsed.signingKey === undefined ? credentialFile('host-key') : absolute(parsed.signingKey),
    adminKey: parsed.adminKey === undefined ? undefined : absolute(parsed.adminKey),
    // A service that must write its audit trail elsewhere (the drill service) sets HVBACKUP_AUDIT_FILE.
    auditFile: process.env.HVBACKUP_AUDIT_FILE ?? (parsed.auditFile === null ? null : absolute(parsed.auditFile)),
    metricsFile: parsed.metricsFile === undefined ? undefined : absolute(parsed.metricsFile),
    recipients: parsed.recipients.map(absolute),
  };
}

/**
 * Returns the path of a systemd credential (LoadCredential=NAME:...) when the
 * service provides it: $CREDENTIALS_DIRECTORY, or HVBACKUP_CREDENTIALS_DIR
 * outside systemd.
 */
export function credentialFile(name: string): string | undefined {
  const directory = process.env.HVBACKUP_CREDENTIALS_DIR ?? process.env.CREDENTIALS_DIRECTORY;
  if (!directory) return undefined;
  const path = join(directory, name);
  return existsSync(path) ? path : undefined;
}

function formatIssues(error: z.ZodError, raw: unknown): string {
  return error.issues
    .map((issue) => {
      const key = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
      const value = valueAt(raw, issue.path);
      const got = value === undefined || issue.code === 'unrecognized_keys' ? '' : ` (got ${JSON.stringify(value)})`;
      return `  ${key}: ${issue.message}${got}`;
    })
    .join('\n');
}

/** Returns the value at a path inside parsed JSON, for error messages; long values are cut. */
function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  let current = raw;
  for (const step of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[step];
  }
  if (typeof current === 'string' && current.length > 80) return `${current.slice(0, 80)}...`;
  if (current !== null && typeof current === 'object') return undefined;
  return current;
}

/** Throws a ConfigError unless the named optional key is set; used by commands that need it. */
export function requireSetting<T>(value: T | undefined, key: string, config: Config, purpose: string): T {
  if (value === undefined || (Array.isArray(value) && value.length === 0)) {
    throw new ConfigError(`configuration ${config.path} has no "${key}", which ${purpose} needs`, {
      hint: `add "${key}" to ${config.path}; docs/configuration.md describes it`,
    });
  }
  return value;
}
