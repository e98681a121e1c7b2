/**
 * The promotion journal check. A journal under stateDir/promotions whose
 * process still runs belongs to a restore that is promoting right now. Any
 * other was left by a killed restore or drill. Until it is settled, the host
 * may have a half-replaced domain, and backups of that domain are rejected.
 */
import type { Config } from '../config/load.js';
import { describeError } from '../errors.js';
import { journalDomains, journalPaths, promotionsDir, readJournal, type PromotionJournal } from '../restore/promotion-journal.js';
import { isProcessRunning } from '../util/process.js';
import { fail, info, ok, type CheckResult } from './check.js';

const NAME = 'restore.promotions';

const STEP_STATES: Record<PromotionJournal['step'], string> = {
  moving: 'restored files may be in place and replaced files renamed aside, and the domain is not defined yet',
  defining: 'every restored file is in place, and virsh define may or may not have completed',
  defined: 'the domain is defined, and replaced files or old checkpoint metadata are still to be removed',
};

export async function checkPromotionJournals(config: Config): Promise<CheckResult[]> {
  const domains = await journalDomains(config.stateDir);
  if (domains.length === 0) return [ok(NAME, `no unfinished restore promotion in ${promotionsDir(config.stateDir)}`)];

  const results: CheckResult[] = [];
  const fix = `run "hvbackup recover" as root or a member of ${config.adminGroup}; it rolls each promotion back, or finishes it when the domain is already defined`;
  for (const domain of domains) {
    const paths = journalPaths(config.stateDir, domain);
    let journal: PromotionJournal | undefined;
    try {
      journal = await readJournal(paths);
    } catch (error) {
      results.push(fail(NAME, describeError(error), `check the files it names by hand, then remove ${paths.dir}`));
      continue;
    }

    if (journal === undefined) {
      results.push(info(NAME, `${paths.dir} holds no journal, only files of a promotion that never started or had already settled; the next restore removes it`));
    } else if (isProcessRunning(journal.pid)) {
      results.push(info(NAME, `process ${journal.pid} is promoting a restore of domain ${domain} (step ${journal.step}, started ${journal.startedAt})`));
    } else {
      results.push(fail(NAME, `a restore of domain ${domain} was killed during promotion (process ${journal.pid}, started ${journal.startedAt}, step ${journal.step}): ${STEP_STATES[journal.step]}; journal ${paths.journal}`, fix));
    }
  }
  return results;
}
