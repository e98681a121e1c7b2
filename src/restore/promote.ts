/**
 * Promotion: the only step of a restore that changes the host. It runs after
 * every byte of the chain was verified. Files move from staging into place by
 * rename, or by a copy across file systems. Files being replaced are first
 * renamed aside. A journal in stateDir/promotions records every step before
 * it happens. A failure, or a kill followed by recovery, therefore ends with
 * either the old or the new domain, not a mixture (see promotion-recovery.ts).
 */
import { execFile } from 'node:child_process';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';

import { lockDomain } from '../backup/domain-lock.js';
import { HvError, ExitCode, RefusedError } from '../errors.js';
import { checkpointNames } from '../libvirt/checkpoints.js';
import { parseDomainXml } from '../libvirt/domain.js';
import type { Domains } from '../libvirt/domain.js';
import { isWithoutVerdict, type Virsh } from '../libvirt/virsh.js';
import type { Logger } from '../log/logger.js';
import { createJournal, journalPaths, removeJournal, syncDirectory, updateJournal, JOURNAL_FORMAT, JOURNAL_VERSION, type JournalPaths, type PromotionJournal } from './promotion-journal.js';
import { rollBackPromotion, settlePromotion } from './promotion-recovery.js';

const execFileAsync = promisify(execFile);

export interface PlacedFile {
  /** Restored file in the staging area. */
  staged: string;
  /** Destination path on the host. */
  destination: string;
}

export interface PromotionPlan {
  domainName: string;
  domainXml: string;
  files: PlacedFile[];
  replace: boolean;
  /** Called before `virsh define`, which can take many seconds on a busy host. */
  onDefine?: () => void;
}

/** Rejects a plan that would overwrite a domain or file without --replace, or a running domain in any case. */
export async function checkDestinations(domains: Domains, plan: Omit<PromotionPlan, 'domainXml' | 'files'> & { destinations: string[] }): Promise<void> {
  if (await domains.exists(plan.domainName)) {
    if (!plan.replace) {
      throw new RefusedError(`domain ${plan.domainName} already exists`, {
        hint: `pass --replace to overwrite it (it must be shut off), or restore under a name no domain has with --as NAME`,
      });
    }
    const state = await domains.state(plan.domainName);
    if (state !== 'shut off') {
      throw new RefusedError(`domain ${plan.domainName} is ${state}; --replace needs it shut off`, {
        hint: `shut it down first: virsh shutdown ${plan.domainName}`,
      });
    }
  }

  for (const destination of plan.destinations) {
    if ((await exists(destination)) && !plan.replace) {
      throw new RefusedError(`file ${destination} already exists`, {
        hint: 'pass --replace to overwrite it, or restore under another name with --as NAME and --storage-dir DIR',
      });
    }
  }
}

export interface PromotionOptions {
  stateDir: string;
  /** Appended to the names of set-aside files: `<destination>.hvbackup-replaced-<suffix>`. */
  suffix: string;
  log: Logger;
}

/**
 * Moves the restored files into place and defines the domain, under the
 * domain's lock. Returns only when the new domain is defined and nothing of
 * the old one is left. On a failure the host is put back as it was before
 * the error is raised.
 */
export async function promote(domains: Domains, virsh: Virsh, plan: PromotionPlan, options: PromotionOptions): Promise<void> {
  const lock = await lockDomain(options.stateDir, plan.domainName);
  if (lock.recoveredStale) options.log.warn({ lock: lock.path }, 'took over the lock of a run that was killed');
  try {
    await promoteLocked(domains, virsh, plan, options);
  } finally {
    await lock.release();
  }
}

async function promoteLocked(domains: Domains, virsh: Virsh, plan: PromotionPlan, options: PromotionOptions): Promise<void> {
  await checkDestinations(domains, { ...plan, destinations: plan.files.map((file) => file.destination) });

  const paths = journalPaths(options.stateDir, plan.domainName);
  const journal = await planJournal(domains, virsh, plan, options.suffix);
  await createJournal(paths, journal);

  // The step last written to the journal, which is what a kill at this moment would leave.
  let step: PromotionJournal['step'] = 'moving';
  try {
    for (const [index, file] of plan.files.entries()) {
      await mkdir(dirname(file.destination), { recursive: true });
      const aside = journal.files[index].aside;
      if (aside !== null) await rename(file.destination, aside);
      await moveFile(file.staged, file.destination);
    }
    for (const directory of new Set(plan.files.map((file) => dirname(file.destination)))) await syncDirectory(directory);

    await updateJournal(paths, { ...journal, step: 'defining' });
    step = 'defining';
    plan.onDefine?.();
    await domains.define(plan.domainXml);
  } catch (error) {
    await settleAfterFailure({ ...journal, step }, paths, { domains, virsh }, error, options.log);
    return;
  }

  try {
    await updateJournal(paths, { ...journal, step: 'defined' });
    await settlePromotion({ ...journal, step: 'defined' }, paths, { domains, virsh });
    await removeJournal(paths);
  } catch (error) {
    throw new HvError('promotion', `domain ${plan.domainName} is defined with the restored disks, but finishing the promotion failed: ${(error as Error).message}`, ExitCode.failure, {
      hint: `run "hvbackup recover" to remove the replaced files and old checkpoint metadata listed in ${paths.journal}`,
      cause: error,
    });
  }
}

/** Records what the promotion will do, before anything on the host changes. */
async function planJournal(domains: Domains, virsh: Virsh, plan: PromotionPlan, suffix: string): Promise<PromotionJournal> {
  const replacing = plan.replace && (await domains.exists(plan.domainName));
  const files: PromotionJournal['files'] = [];
  for (const file of plan.files) {
    const aside = (await exists(file.destination)) ? `${file.destination}.hvbackup-replaced-${suffix}` : null;
    files.push({ staged: file.staged, destination: file.destination, aside });
  }

  return {
    format: JOURNAL_FORMAT,
    version: JOURNAL_VERSION,
    domain: plan.domainName,
    uuid: parseDomainXml(plan.domainXml).uuid,
    pid: process.pid,
    startedAt: new Date().toISOString(),
    step: 'moving',
    files,
    createdDirectories: await missingDirectories(plan.files.map((file) => dirname(file.destination))),
    checkpoints: replacing ? await checkpointNames(virsh, plan.domainName) : [],
    domainXml: plan.domainXml,
  };
}

/**
 * Settles a promotion whose move or define step failed, then raises the
 * error. When libvirt rejected the definition, or the moves failed, it
 * rolls back. When the define step ended without libvirt's verdict (a time
 * limit, a lost connection), the definition may be in place already, so it
 * defines it again and finishes, and the promotion counts as done.
 */
async function settleAfterFailure(journal: PromotionJournal, paths: JournalPaths, libvirt: { domains: Domains; virsh: Virsh }, error: unknown, log: Logger): Promise<void> {
  let settled;
  try {
    settled = journal.step === 'defining' && isWithoutVerdict(error) ? await settlePromotion(journal, paths, libvirt) : await rollBackPromotion(journal);
  } catch (settleError) {
    log.error({ err: settleError, journal: paths.journal }, `settling the failed promotion of domain ${journal.domain} failed; its journal stays for "hvbackup recover"`);
    throw error;
  }
  await removeJournal(paths);

  if (settled.result === 'completed') {
    log.warn({ err: error, actions: settled.actions }, `the define step of domain ${journal.domain} ended without a result from libvirt, and defining it again succeeded; promotion finished`);
    return;
  }
  log.warn({ actions: settled.actions }, `promotion of domain ${journal.domain} failed and was rolled back: ${settled.actions.join('; ') || 'nothing had changed on the host'}`);
  throw error;
}

/** Returns the directories that mkdir -p would create for these paths, outermost first. */
async function missingDirectories(directories: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const directory of new Set(directories)) {
    let current = directory;
    const chain: string[] = [];
    while (!(await exists(current)) && dirname(current) !== current) {
      chain.unshift(current);
      current = dirname(current);
    }
    for (const path of chain) if (!missing.includes(path)) missing.push(path);
  }
  return missing;
}

async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    // Staging is on another file system: copy, keeping holes, then remove the staged file.
    await execFileAsync('cp', ['--sparse=always', '--', from, to]);
    await rm(from, { force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
