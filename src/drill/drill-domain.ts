/**
 * One drill: restore the latest backup of a domain as a sandbox clone
 * without network interfaces, measure RPO and RTO, run the boot check, and
 * remove the sandbox again. The original domain is never touched: restore
 * runs with `as` (a new name, UUID, MAC addresses and disk paths) and
 * without `replace`, so it rejects any existing domain or file.
 */
import type { PrivateKey } from 'openpgp';

import type { AuditLog } from '../audit/audit-log.js';
import type { Config } from '../config/load.js';
import { describeError } from '../errors.js';
import { Domains } from '../libvirt/domain.js';
import { RECONNECT_MS, Virsh } from '../libvirt/virsh.js';
import type { Logger } from '../log/logger.js';
import type { Progress } from '../log/progress.js';
import type { BackupRef } from '../manifest/layout.js';
import { openRepository } from '../repository/repository.js';
import { loadTrustedManifest, loadTrustedSigners } from '../restore/manifest-check.js';
import { restoreBackup } from '../restore/restore.js';
import { checkBoot } from './boot-check.js';
import { missedTargets, type DrillResult } from './report.js';
import { createSandbox, removalCommands, removeSandbox, type Sandbox } from './sandbox.js';
import type { DrillSettings } from './settings.js';

export interface DrillContext {
  settings: DrillSettings;
  /** The drill key, already read; undefined lets restore read the configured adminKey. */
  drillKey?: PrivateKey;
  /** Leave the sandbox of a successful restore in place for inspection. */
  keep: boolean;
  audit: AuditLog;
  logger: Logger;
  signal: AbortSignal;
  progress?: Progress;
}

export async function drillDomain(config: Config, domain: string, context: DrillContext): Promise<DrillResult> {
  const started = new Date();
  const log = context.logger.child({ drillOf: domain });
  const libvirt = libvirtFor(config, log);
  const sandbox = await createSandbox(context.settings.sandboxDir, domain, started);
  const result = initialResult(domain, sandbox.name, context.settings.targetsOf(domain));
  log.info({ phase: 'drill', sandbox: sandbox.name, directory: sandbox.directory }, 'drill started');

  let restored = false;
  // Errors and a failed boot check make the drill "failed"; missed targets alone make it "target-missed".
  let failed = false;
  try {
    const restore = await restoreBackup(
      // Staging under drill.sandboxDir keeps every byte the drill writes below that directory.
      { ...config, stagingDir: sandbox.stagingDir },
      {
        selector: domain,
        host: config.host,
        as: sandbox.name,
        storageDir: sandbox.storageDir,
        removeInterfaces: true,
        command: 'drill',
        replace: false,
        // The sandbox replaces nothing, and the age of the backup is what the RPO measures.
        allowRollback: true,
        reason: `restore drill into sandbox ${sandbox.name}`,
        confirm: async (summary) => {
          log.debug({ phase: 'drill-plan', plan: summary }, 'drill restore plan');
          return true;
        },
        audit: context.audit,
        logger: context.logger,
        signal: context.signal,
        progress: context.progress,
        adminKey: context.drillKey,
      },
    );
    restored = true;
    result.backupId = restore.ref.backupId;
    result.restoreSeconds = restore.durationMs / 1000;

    result.snapshotAt = await snapshotTime(config, restore.ref);
    result.rpoSeconds = (started.getTime() - Date.parse(result.snapshotAt)) / 1000;

    const boot = await checkBoot(libvirt, sandbox.name, context.settings.bootCheck, context.signal);
    result.bootCheck = boot.check;
    if (boot.failure) {
      failed = true;
      result.failures.push(`drill of ${domain} failed the boot check: ${boot.failure}`);
    } else {
      result.rtoSeconds = (boot.finishedAt - started.getTime()) / 1000;
      result.failures.push(...missedTargets(domain, { rpoSeconds: result.rpoSeconds, rtoSeconds: result.rtoSeconds }, result.targets));
    }
  } catch (error) {
    if (context.signal.aborted) throw error;
    failed = true;
    result.failures.push(`drill of ${domain} failed: ${describeError(error)}`);
  } finally {
    const keep = context.keep && restored && !context.signal.aborted;
    if (keep) {
      result.kept = true;
      result.removeCommands = removalCommands(sandbox, config.libvirt.uri);
      log.info({ phase: 'drill-keep', sandbox: sandbox.name, remove: result.removeCommands }, 'sandbox kept for inspection');
    } else {
      if (!(await removeSandboxLogged(libvirt.domains, sandbox, log, result))) failed = true;
    }
  }

  result.result = failed ? 'failed' : result.failures.length > 0 ? 'target-missed' : 'passed';
  result.finishedAt = Date.now() / 1000;
  await recordDrill(context.audit, config, result, Date.now() - started.getTime(), log);
  log.info({ phase: 'drill', result: result.result, rpoSeconds: result.rpoSeconds, rtoSeconds: result.rtoSeconds }, 'drill finished');
  return result;
}

/** Appends the drill to the audit trail. A failed write fails the drill but keeps its measurements. */
async function recordDrill(audit: AuditLog, config: Config, result: DrillResult, durationMs: number, log: Logger): Promise<void> {
  try {
    await audit.record({
      action: 'drill',
      result: result.result === 'passed' ? 'ok' : 'failed',
      domain: result.domain,
      backupId: result.backupId ?? undefined,
      host: config.host,
      error: result.failures.length > 0 ? result.failures.join('; ') : undefined,
      durationMs,
      details: { sandbox: result.sandbox, rpoSeconds: result.rpoSeconds, rtoSeconds: result.rtoSeconds, targets: result.targets, kept: result.kept },
    });
  } catch (error) {
    log.error({ phase: 'drill-audit', err: error }, describeError(error));
    result.result = 'failed';
    result.failures.push(`drill of ${result.domain} was not recorded in the audit trail: ${describeError(error)}`);
  }
}

function libvirtFor(config: Config, logger: Logger): { virsh: Virsh; domains: Domains } {
  const virsh = new Virsh({ uri: config.libvirt.uri, reconnectMs: RECONNECT_MS, logger });
  return { virsh, domains: new Domains(virsh) };
}

/** Reads snapshotAt from the restored backup's manifest, checked against the pinned host keys again. */
async function snapshotTime(config: Config, ref: BackupRef): Promise<string> {
  const { store } = await openRepository(config, { create: false });
  const trustedKeys = await loadTrustedSigners(store, config.trustedSigners);
  const { manifest } = await loadTrustedManifest(store, ref, trustedKeys);
  return manifest.snapshotAt;
}

/**
 * Removes the sandbox and returns whether that worked. A failure fails the
 * drill, because a leftover clone holds disk space and a copy of the data.
 */
async function removeSandboxLogged(domains: Domains, sandbox: Sandbox, log: Logger, result: DrillResult): Promise<boolean> {
  try {
    await removeSandbox(domains, sandbox);
    log.info({ phase: 'drill-cleanup', sandbox: sandbox.name }, 'sandbox removed');
    return true;
  } catch (error) {
    log.error({ phase: 'drill-cleanup', sandbox: sandbox.name, err: error }, describeError(error));
    result.failures.push(`drill of ${result.domain} left its sandbox behind: ${describeError(error)}`);
    return false;
  }
}

/** A result with nothing measured yet, marked failed until the drill decides. */
export function initialResult(domain: string, sandbox: string, targets: DrillResult['targets']): DrillResult {
  return {
    domain,
    sandbox,
    backupId: null,
    snapshotAt: null,
    rpoSeconds: null,
    restoreSeconds: null,
    rtoSeconds: null,
    bootCheck: { running: false, runningSeconds: null, guestAgent: 'not-checked' },
    targets,
    result: 'failed',
    failures: [],
    finishedAt: 0,
    kept: false,
    removeCommands: [],
  };
}
