/**
 * Runs every doctor check and collects the results in a fixed order: tools,
 * configuration, libvirt, domains, keys, directories, unfinished restore
 * promotions, repository, roles.
 * Independent checks run even when an earlier one failed. A check that needs
 * another's result is skipped instead, for example the domain checks when
 * libvirt does not respond.
 */
import { unknownExcludeDomains } from '../backup/disk-selection.js';
import type { Config } from '../config/load.js';
import { Domains } from '../libvirt/domains.js';
import { Virsh } from '../libvirt/virsh.js';
import { failureOf, ok, runCheck, warn, type CheckResult } from './check.js';
import { checkDirectories } from './directories.js';
import { checkDomain } from './domains.js';
import { checkKeys } from './keys.js';
import { checkKvmDevice } from './kvm-device.js';
import { checkBackupCapability, probeConnection } from './libvirt.js';
import { checkPromotionJournals } from './promotions.js';
import { checkRepository } from './repository.js';
import { checkRoles } from './roles.js';
import { checkGpg, checkNode, checkQemuTool, checkVirshClient } from './tools.js';

export { anyFailed, type CheckResult, type CheckStatus } from './check.js';

export interface DoctorOptions {
  /** Loader of the configuration. A failure becomes a FAIL line and skips the checks that need it. */
  loadConfig: () => Promise<Config>;
  /** Domains to check, or every defined domain when empty. */
  domains: string[];
  /** Whether to write and delete a probe object in the repository. */
  writeTest: boolean;
  /** Callback for each group of results as it is ready, so a terminal shows progress. */
  onResults?: (results: CheckResult[]) => void;
}

export async function runDoctor(options: DoctorOptions): Promise<CheckResult[]> {
  const all: CheckResult[] = [];
  const report = (results: CheckResult[]) => {
    all.push(...results);
    options.onResults?.(results);
  };

  report([checkNode()]);
  report(await runCheck('tools.virsh', checkVirshClient));
  report(await runCheck('tools.qemu-img', () => checkQemuTool('qemu-img')));
  report(await runCheck('tools.qemu-nbd', () => checkQemuTool('qemu-nbd')));
  report(await runCheck('tools.gpg', checkGpg));

  let config: Config;
  try {
    config = await options.loadConfig();
    report([ok('config', `configuration ${config.path} is valid`)]);
  } catch (error) {
    report([failureOf('config', error, 'fix the configuration file; docs/configuration.md lists every key')]);
    return all;
  }

  const virsh = new Virsh({ uri: config.libvirt.uri });
  const connection = await probeConnection(virsh);
  report(connection.results);
  if (connection.connected) {
    report(await runCheck('libvirt.backup-capability', () => checkBackupCapability(virsh)));
    report(await runCheck('libvirt.kvm-device', () => checkKvmDevice('libvirt.kvm-device')));
    const defined = await listAllDomains(virsh, report);
    const names = options.domains.length > 0 ? options.domains : defined;
    for (const domain of names) report(await runCheck(`domain ${domain}`, () => checkDomain(virsh, domain, config.excludeDisks[domain] ?? [])));
    report(checkExcludeDomains(config, defined, virsh.uri));
  }

  report(await checkKeys(config));
  report(await checkDirectories(config));
  report(await runCheck('restore.promotions', () => checkPromotionJournals(config)));
  report(await checkRepository(config, { writeTest: options.writeTest }));
  report(await runCheck('roles', () => checkRoles(config)));
  return all;
}

/** Warns about domain names in excludeDisks that libvirt does not know, since a misspelt name excludes nothing. */
function checkExcludeDomains(config: Config, defined: string[], uri: string): CheckResult[] {
  return unknownExcludeDomains(config.excludeDisks, defined).map((name) =>
    warn('config.excludeDisks', `excludeDisks names domain ${name}, which is not defined at ${uri}, so it excludes nothing`, `check the spelling with: virsh -c ${uri} list --all`),
  );
}

async function listAllDomains(virsh: Virsh, report: (results: CheckResult[]) => void): Promise<string[]> {
  let names: string[] = [];
  report(await runCheck('libvirt.domains', async () => {
    names = await new Domains(virsh).list({ all: true });
    return ok('libvirt.domains', names.length === 0 ? 'no domains defined' : `${names.length} domain(s) defined`);
  }));
  return names;
}
