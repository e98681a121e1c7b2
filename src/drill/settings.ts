/**
 * Drill settings as a drill uses them: the `drill` section of the
 * configuration with every path absolute and the targets of each domain
 * filled in from the defaults.
 */
import { access } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';

import type { Config } from '../config/load.js';

export interface DrillTargets {
  rpoSeconds: number;
  rtoSeconds: number;
}

export interface BootCheckSettings {
  runningTimeoutSeconds: number;
  guestAgent: boolean;
  guestAgentTimeoutSeconds: number;
}

export interface DrillSettings {
  sandboxDir: string;
  metricsFile: string | undefined;
  bootCheck: BootCheckSettings;
  targetsOf(domain: string): DrillTargets;
}

/** The credential name under which the drill service receives the drill key (LoadCredential=drill-key:...). */
export const DRILL_KEY_CREDENTIAL = 'drill-key';

export function drillSettings(config: Config): DrillSettings {
  const drill = config.drill;
  return {
    sandboxDir: absolutePath(config, drill.sandboxDir),
    metricsFile: drill.metricsFile === undefined ? undefined : absolutePath(config, drill.metricsFile),
    bootCheck: drill.bootCheck,
    targetsOf: (domain) => ({ ...drill.defaults, ...drill.domains[domain] }),
  };
}

/**
 * Picks the secret key a drill decrypts with: drill.keyFile, else the
 * systemd credential drill-key, else undefined so that restore reads the
 * configured adminKey.
 */
export async function drillKeyPath(config: Config, environment: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (config.drill.keyFile !== undefined) return absolutePath(config, config.drill.keyFile);

  const credentials = environment.CREDENTIALS_DIRECTORY;
  if (credentials) {
    const path = join(credentials, DRILL_KEY_CREDENTIAL);
    try {
      await access(path);
      return path;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

// The configuration loader resolves the top-level paths only, so drill paths
// are resolved here the same way: relative to the configuration file.
function absolutePath(config: Config, value: string): string {
  return isAbsolute(value) ? value : resolve(dirname(resolve(config.path)), value);
}
