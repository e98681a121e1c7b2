/**
 * Promotion: the only step of a restore that changes the host. It runs after
 * every byte of the chain was verified. Files move from staging into place by
 * rename, or by a copy across file systems. Files being replaced are first
 * renamed aside and put back if any later step fails, so the host ends with
 * either the old or the new domain, not a mixture.
 */
import { execFile } from 'node:child_process';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';

import { RefusedError } from '../errors.js';
import { deleteCheckpoint, listCheckpoints } from '../libvirt/checkpoints.js';
import type { Domains } from '../libvirt/domain.js';
import type { Virsh } from '../libvirt/virsh.js';

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
        hint: `pass --replace to overwrite it (it must be shut off), or --as NEWNAME to restore a clone`,
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
        hint: 'pass --replace to overwrite it, or --as NEWNAME (and --storage-dir DIR) to restore a clone elsewhere',
      });
    }
  }
}

export async function promote(domains: Domains, virsh: Virsh, plan: PromotionPlan, suffix: string): Promise<void> {
  await checkDestinations(domains, { ...plan, destinations: plan.files.map((file) => file.destination) });

  // Restored images carry no dirty bitmaps, so checkpoints of the replaced
  // domain describe bitmaps that no longer exist: drop their metadata, which
  // also makes the next backup start a new chain with a full backup.
  if (plan.replace && (await domains.exists(plan.domainName))) {
    for (const checkpoint of await listCheckpoints(virsh, plan.domainName)) {
      await deleteCheckpoint(virsh, plan.domainName, checkpoint.name, { metadataOnly: true });
    }
  }

  const setAside: { original: string; aside: string }[] = [];
  const placed: string[] = [];
  try {
    for (const file of plan.files) {
      await mkdir(dirname(file.destination), { recursive: true });
      if (await exists(file.destination)) {
        const aside = `${file.destination}.hvbackup-replaced-${suffix}`;
        await rename(file.destination, aside);
        setAside.push({ original: file.destination, aside });
      }
      await moveFile(file.staged, file.destination);
      placed.push(file.destination);
    }
    plan.onDefine?.();
    await domains.define(plan.domainXml);
  } catch (error) {
    // Undo in reverse: remove what was placed, put back what was set aside.
    for (const path of placed.reverse()) await rm(path, { force: true });
    for (const { original, aside } of setAside.reverse()) await rename(aside, original).catch(() => undefined);
    throw error;
  }

  for (const { aside } of setAside) await rm(aside, { force: true });
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
