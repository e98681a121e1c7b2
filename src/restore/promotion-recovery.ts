/**
 * Settles promotions that did not finish: it rolls the host back to how it
 * was, or finishes the promotion. Promotion uses this when one of its steps
 * fails. Every restore, drill and `hvbackup recover` first uses it on the
 * journals that killed runs left behind.
 */
import { lstat, rename, rm, rmdir } from 'node:fs/promises';
import { dirname } from 'node:path';

import type { AuditLog } from '../audit/audit-log.js';
import { lockDomain } from '../backup/domain-lock.js';
import { describeError, RefusedError } from '../errors.js';
import { checkpointNames, deleteCheckpoint } from '../libvirt/checkpoints.js';
import type { Domains } from '../libvirt/domains.js';
import { isWithoutVerdict, type Virsh } from '../libvirt/virsh.js';
import type { Logger } from '../log/logger.js';
import {
  JournalError,
  journalDomains,
  journalPaths,
  readJournal,
  removeJournal,
  removeJournalDirectory,
  syncDirectory,
  type JournalPaths,
  type PromotionJournal,
} from './promotion-journal.js';

export interface Libvirt {
  virsh: Virsh;
  domains: Domains;
}

export interface Settlement {
  /** Outcome. After `rolled-back` the host is as before the promotion. After `completed` the new domain is defined and nothing old is left. */
  result: 'rolled-back' | 'completed';
  /** Each change made to settle, in order, for the log and the audit trail. */
  actions: string[];
}

/**
 * Brings an unfinished promotion to one of its two ends, by the step its
 * journal records.
 * - `moving`: `virsh define` never started, so it rolls back.
 * - `defining`: every file is in place, so it defines the journal's
 *   definition (again) and finishes. It rolls back only when libvirt
 *   rejects that definition.
 * - `defined`: it finishes.
 *
 * At `defining` it does not ask libvirt whether the killed run's define
 * landed. That run's virsh, or the request it already sent, can still be in
 * flight and define the domain after any such check, so a rollback based on
 * the check could leave a domain without its disks. Defining the same XML
 * twice is harmless.
 *
 * Throws, leaving the journal for a later attempt, when libvirt gives no
 * verdict: no connection, or a time limit.
 */
export async function settlePromotion(journal: PromotionJournal, paths: JournalPaths, libvirt: Libvirt): Promise<Settlement> {
  if (journal.step === 'moving') return rollBackPromotion(journal);

  const actions: string[] = [];
  if (journal.step === 'defining') {
    try {
      await libvirt.domains.define(journal.domainXml);
    } catch (error) {
      if (isWithoutVerdict(error)) throw error;
      const rolledBack = await rollBackPromotion(journal);
      return { result: 'rolled-back', actions: [`libvirt rejected the definition in ${paths.journal}: ${(error as Error).message}`, ...rolledBack.actions] };
    }
    actions.push(`defined domain ${journal.domain} from the definition in ${paths.journal}`);
  }
  actions.push(...(await finishPromotion(journal, libvirt.virsh)));
  return { result: 'completed', actions };
}

/**
 * Removes every file the promotion placed and renames every set-aside file
 * back, in reverse order. A destination is removed only when its original is
 * safe under the set-aside name, or when no original existed. Only valid
 * while `virsh define` cannot have run or was rejected.
 */
export async function rollBackPromotion(journal: PromotionJournal): Promise<Settlement> {
  const actions: string[] = [];
  for (const file of [...journal.files].reverse()) {
    if (file.aside === null) {
      if (!(await exists(file.destination))) continue;
      await rm(file.destination, { force: true });
      actions.push(`removed ${file.destination}`);
      continue;
    }
    // Without the set-aside file the original was never moved, or was already put back.
    if (!(await exists(file.aside))) continue;
    await rm(file.destination, { force: true });
    await rename(file.aside, file.destination);
    actions.push(`renamed ${file.aside} back to ${file.destination}`);
  }

  for (const directory of [...journal.createdDirectories].reverse()) {
    try {
      await rmdir(directory);
      actions.push(`removed the directory ${directory}`);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // The directory was never made, or it contains someone else's files, so it stays.
      if (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
    }
  }

  for (const directory of new Set(journal.files.map((file) => dirname(file.destination)))) {
    await syncDirectory(directory).catch(() => undefined);
  }
  return { result: 'rolled-back', actions };
}

/** Drops the old checkpoint metadata and removes the set-aside files. Every step skips what is already done. */
async function finishPromotion(journal: PromotionJournal, virsh: Virsh): Promise<string[]> {
  const actions: string[] = [];

  // Restored images carry no dirty bitmaps, so the checkpoints of the replaced
  // domain describe bitmaps that no longer exist. Dropping their metadata also
  // makes the next backup start a new chain with a full backup.
  if (journal.checkpoints.length > 0) {
    const existing = new Set(await checkpointNames(virsh, journal.domain));
    for (const name of journal.checkpoints) {
      if (!existing.has(name)) continue;
      await deleteCheckpoint(virsh, journal.domain, name, { metadataOnly: true });
      actions.push(`dropped the metadata of checkpoint ${name}`);
    }
  }

  for (const file of journal.files) {
    if (file.aside === null || !(await exists(file.aside))) continue;
    await rm(file.aside, { force: true });
    actions.push(`removed the replaced file ${file.aside}`);
  }
  return actions;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

export interface RecoveryOutcome {
  domain: string;
  /**
   * Outcome. `in-progress` means another live run holds the domain's lock,
   * so its journal was left alone. `unusable` means the journal is invalid or
   * not trusted (see `error`), so nothing was done. `swept` means a directory
   * without a journal was removed.
   */
  result: Settlement['result'] | 'in-progress' | 'unusable' | 'swept';
  actions: string[];
  error?: string;
}

/**
 * Settles every promotion journal under stateDir/promotions that no live run
 * owns, each under its domain's lock, and removes the journal afterwards.
 * A journal that is invalid or not trusted is logged and left alone, so it
 * cannot stop restores of other domains. Throws on the first journal that
 * cannot be settled, which then stays for the next attempt.
 */
export async function recoverPromotions(
  config: { stateDir: string },
  options: { logger: Logger; audit?: AuditLog; libvirt: Libvirt },
): Promise<RecoveryOutcome[]> {
  const outcomes: RecoveryOutcome[] = [];
  const domainNames = await journalDomains(config.stateDir);

  for (const domain of domainNames) {
    const log = options.logger.child({ phase: 'promotion-recovery', domain });
    let lock;
    try {
      lock = await lockDomain(config.stateDir, domain);
    } catch (error) {
      if (!(error instanceof RefusedError)) throw error;
      log.info(`leaving the promotion journal of domain ${domain} alone: ${error.message}`);
      outcomes.push({ domain, result: 'in-progress', actions: [] });
      continue;
    }

    try {
      outcomes.push(await recoverDomain(config.stateDir, domain, options.libvirt, log, options.audit));
    } finally {
      await lock.release();
    }
  }
  return outcomes;
}

async function recoverDomain(stateDir: string, domain: string, libvirt: Libvirt, log: Logger, audit: AuditLog | undefined): Promise<RecoveryOutcome> {
  const paths = journalPaths(stateDir, domain);
  let journal: PromotionJournal | undefined;
  try {
    journal = await readJournal(paths);
  } catch (error) {
    if (!(error instanceof JournalError)) throw error;
    log.error({ err: error, journal: paths.journal }, `cannot use the promotion journal of domain ${domain}, so it stays as it is: ${describeError(error)}`);
    await audit?.record({ action: 'promotion-recovery', result: 'refused', domain, error: error.message, details: { journal: paths.journal } });
    return { domain, result: 'unusable', actions: [], error: error.message };
  }

  if (journal === undefined) {
    // A run killed before its first journal write, or after removing its journal, left nothing on the host to settle.
    if (await removeJournalDirectory(paths)) {
      log.info({ directory: paths.dir }, `removed the leftover promotion directory ${paths.dir}, which had no journal`);
    } else {
      log.warn({ directory: paths.dir }, `left ${paths.dir} in place: it has no journal but contains files that hvbackup did not write`);
    }
    return { domain, result: 'swept', actions: [] };
  }

  const origin = `process ${journal.pid}, started ${journal.startedAt}, step ${journal.step}`;
  log.warn({ journal: paths.journal, pid: journal.pid, step: journal.step }, `found an interrupted promotion of domain ${domain} (${origin}); settling it`);

  let settlement: Settlement;
  try {
    settlement = await settlePromotion(journal, paths, libvirt);
  } catch (error) {
    log.error({ err: error, journal: paths.journal }, `settling the interrupted promotion of domain ${domain} failed; its journal stays for the next attempt: ${describeError(error)}`);
    await audit?.record({ action: 'promotion-recovery', result: 'failed', domain, error: (error as Error).message, details: { journal: paths.journal, step: journal.step, pid: journal.pid } });
    throw error;
  }
  await removeJournal(paths);

  const done = settlement.actions.length === 0 ? 'nothing had changed on the host' : settlement.actions.join('; ');
  if (settlement.result === 'rolled-back') {
    log.warn({ actions: settlement.actions, pid: journal.pid }, `rolled back the interrupted promotion of domain ${domain}: ${done}`);
  } else {
    log.warn({ actions: settlement.actions, pid: journal.pid }, `finished the interrupted promotion of domain ${domain}: ${done}`);
  }
  await audit?.record({
    action: 'promotion-recovery',
    result: 'ok',
    domain,
    details: { settlement: settlement.result, actions: settlement.actions, step: journal.step, pid: journal.pid, startedAt: journal.startedAt },
  });
  return { domain, result: settlement.result, actions: settlement.actions };
}
