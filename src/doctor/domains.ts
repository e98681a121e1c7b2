/**
 * Backup support of one domain. The checks list the disks a backup reads and
 * whether their formats allow incrementals. They test that this user can read
 * the files an offline backup reads (disk images and NVRAM), and look for a
 * backup job left behind by an earlier run and for old hvbackup checkpoints.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { userInfo } from 'node:os';

import { CHECKPOINT_PREFIX } from '../backup/checkpoints.js';
import { findActiveBackupJob } from '../libvirt/backup-job.js';
import { partitionDisks, unknownTargets } from '../backup/disk-selection.js';
import { parseDomainXml, type DiskInfo } from '../libvirt/domain.js';
import { Domains } from '../libvirt/domains.js';
import { Virsh } from '../libvirt/virsh.js';
import { fail, ok, runCheck, warn, type CheckResult } from './check.js';
import { execProgram, firstLine } from './exec.js';

/** Runs every check of one domain. Checks that need the domain XML are skipped when it cannot be read. */
export async function checkDomain(virsh: Virsh, domain: string, excludeTargets: readonly string[] = []): Promise<CheckResult[]> {
  const prefix = `domain ${domain}`;
  const domains = new Domains(virsh);

  if (!(await domains.exists(domain))) {
    return [fail(`${prefix}`, `domain ${domain} not found at ${virsh.uri}`, `check the name with: virsh -c ${virsh.uri} list --all`)];
  }

  const state = await domains.state(domain);
  const running = state === 'running' || state === 'paused';
  const info = parseDomainXml(await domains.dumpXml(domain));
  const { included: disks, excluded } = partitionDisks(info, excludeTargets);
  const results: CheckResult[] = [];

  const excludedText = excluded.length === 0 ? '' : `; excludeDisks leaves out ${excluded.map((disk) => disk.target).join(', ')}`;
  if (disks.length === 0) {
    results.push(warn(`${prefix}: disks`, `${state}, no disk that a backup reads (only writable, unshared file or block disks are read)${excludedText}`, 'nothing to do unless the domain should have a disk in its backups'));
  } else {
    results.push(ok(`${prefix}: disks`, `${state}, backs up ${disks.map((disk) => `${disk.target} (${disk.format ?? 'raw'})`).join(', ')}${excludedText}`));
  }

  const targets = info.disks.map((disk) => disk.target);
  for (const target of unknownTargets(info, excludeTargets)) {
    results.push(warn(`${prefix}: excludeDisks`, `excludeDisks lists disk ${target}, which domain ${domain} does not have (its disks: ${targets.join(', ') || 'none'})`, `fix or remove "${target}" under "excludeDisks"."${domain}" in the configuration`));
  }

  for (const disk of disks) {
    results.push(...(await runCheck(`${prefix}: disk ${disk.target}`, () => checkDiskFormat(prefix, disk))));
    if (!running) results.push(...(await runCheck(`${prefix}: disk ${disk.target} readable`, () => checkReadable(`${prefix}: disk ${disk.target} readable`, disk.sourcePath, 'disk image'))));
  }
  if (info.nvramPath !== undefined) {
    results.push(...(await runCheck(`${prefix}: nvram`, () => checkReadable(`${prefix}: nvram`, info.nvramPath, 'NVRAM file'))));
  }
  if (running) results.push(...(await runCheck(`${prefix}: backup job`, () => checkBackupJob(virsh, domain))));
  results.push(...(await runCheck(`${prefix}: checkpoints`, () => checkCheckpoints(virsh, domain))));
  return results;
}

/**
 * qcow2 with compat 1.1 can carry persistent dirty bitmaps, so incrementals
 * work. raw works but is read in full every time. Anything else (vmdk, vdi,
 * qed, ...) is rejected, because the offline path and the restore write only
 * qcow2 and raw.
 */
export async function checkDiskFormat(prefix: string, disk: DiskInfo): Promise<CheckResult> {
  const name = `${prefix}: disk ${disk.target}`;
  const format = disk.format ?? 'raw';
  const path = disk.sourcePath ?? '(no source)';

  if (format === 'raw') {
    return warn(name, `raw image ${path}: copied in full every backup, because raw images cannot carry dirty bitmaps`, `convert it to qcow2 while the domain is shut off: qemu-img convert -f raw -O qcow2 ${path} NEW.qcow2, then point the disk's <source> and <driver type='qcow2'/> at it`);
  }
  if (format !== 'qcow2') {
    return fail(name, `format ${format} of ${path} cannot be backed up; hvbackup reads qcow2 and raw only`, `convert it while the domain is shut off: qemu-img convert -f ${format} -O qcow2 ${path} NEW.qcow2, then set the disk's <source file=...> and <driver type='qcow2'/> with virsh edit`);
  }
  if (disk.sourcePath === undefined) return ok(name, 'qcow2 disk without a file path; its compat level was not checked');

  const result = await execProgram('qemu-img', ['info', '--force-share', '--output=json', disk.sourcePath]);
  if (result.code !== 0) {
    return warn(name, `qemu-img info ${disk.sourcePath} failed: ${firstLine(result.stderr)}; cannot tell whether it carries bitmaps`, `run as root: qemu-img info --force-share ${disk.sourcePath}`);
  }
  const compat = qcow2Compat(result.stdout);
  if (compat !== '1.1') {
    return warn(name, `qcow2 image ${disk.sourcePath} has compat ${compat ?? 'unknown'}, which cannot store persistent bitmaps: incremental backups are impossible`, `while the domain is shut off: qemu-img amend -f qcow2 -o compat=1.1 ${disk.sourcePath}`);
  }
  return ok(name, `qcow2 (compat 1.1) ${disk.sourcePath}: incrementals possible`);
}

/** Returns `format-specific.data.compat` from `qemu-img info --output=json`, e.g. "1.1" or "0.10". */
export function qcow2Compat(infoJson: string): string | undefined {
  const info = JSON.parse(infoJson) as { 'format-specific'?: { data?: { compat?: unknown } } };
  const compat = info['format-specific']?.data?.compat;
  return typeof compat === 'string' ? compat : undefined;
}

/** Checks that this user can read a file that an offline backup reads directly. */
async function checkReadable(name: string, path: string | undefined, fileKind: string): Promise<CheckResult> {
  if (path === undefined) return ok(name, `${fileKind} has no file path`);
  try {
    await access(path, constants.R_OK);
    return ok(name, `${fileKind} ${path} is readable by this user`);
  } catch (error) {
    const user = userInfo().username;
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return fail(name, `${fileKind} ${path} is not readable by user ${user} (${code})`, `grant read access, e.g. setfacl -m u:${user}:r ${path} (and u:${user}:x on each parent directory), or chmod g+r ${path} with ${user} in the file's group`);
  }
}

async function checkBackupJob(virsh: Virsh, domain: string): Promise<CheckResult> {
  const name = `domain ${domain}: backup job`;
  if (await findActiveBackupJob(virsh, domain)) {
    return warn(name, 'a backup job is active; a new backup fails until it ends', `if no hvbackup run is in progress, end it with: virsh -c ${virsh.uri} domjobabort ${domain}`);
  }
  return ok(name, 'no backup job active');
}

async function checkCheckpoints(virsh: Virsh, domain: string): Promise<CheckResult> {
  const name = `domain ${domain}: checkpoints`;
  const output = await virsh.run(['checkpoint-list', domain, '--name'], { domain });
  const ours = output.split('\n').map((line) => line.trim()).filter((line) => line.startsWith(CHECKPOINT_PREFIX));
  if (ours.length > 1) {
    return warn(name, `${ours.length} hvbackup checkpoints (${ours.join(', ')}); each keeps a dirty bitmap in every qcow2 disk`, `the next successful backup deletes all but the newest; to delete one by hand: virsh -c ${virsh.uri} checkpoint-delete ${domain} ${ours[0]}`);
  }
  return ok(name, ours.length === 1 ? `one hvbackup checkpoint (${ours[0]})` : 'no hvbackup checkpoint yet; the next backup is full');
}
