/**
 * The promotion journal: what a restore promotion is about to change on the
 * host, kept in stateDir/promotions/<domain>/journal.json while the
 * promotion runs. Promotion writes it durably before its first change and
 * updates it after each step. A restore killed part-way leaves it behind,
 * and the next restore (or `hvbackup recover`) reads it to roll the host
 * back or to finish.
 *
 * Recovery renames and removes host files and defines a domain on the
 * journal's word, usually as root, while stateDir belongs to the backup
 * user. A journal is therefore trusted only when it is a regular file owned
 * by root or by the reading user and writable by no one else, which the
 * backup user cannot forge. Removing a journal directory touches only the
 * file names this module writes, and never recurses.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, rmdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import { z } from 'zod';

import { HvError, ExitCode } from '../errors.js';
import { writeFileAtomic } from '../metrics/atomic-write.js';

export const JOURNAL_FORMAT = 'hvbackup-promotion';
export const JOURNAL_VERSION = 1;

const JOURNAL_FILE = 'journal.json';

/**
 * How far a promotion got.
 * - `moving`: files are being renamed aside and moved into place, and `virsh define` has not started.
 * - `defining`: every file is in place, and `virsh define` may be running or done.
 * - `defined`: `virsh define` succeeded, so only set-aside files and old checkpoint metadata remain to be removed.
 */
export type PromotionStep = 'moving' | 'defining' | 'defined';

const journalSchema = z
  .object({
    format: z.literal(JOURNAL_FORMAT),
    version: z.literal(JOURNAL_VERSION),
    domain: z.string().min(1),
    /** UUID in the definition being promoted. */
    uuid: z.string(),
    /** Process that ran the promotion. */
    pid: z.number().int().positive(),
    startedAt: z.string(),
    step: z.enum(['moving', 'defining', 'defined']),
    files: z.array(
      z
        .object({
          staged: z.string(),
          destination: z.string(),
          /** Name the file being replaced is renamed to; null when the destination did not exist. */
          aside: z.string().nullable(),
        })
        .strict(),
    ),
    /** Directories that promotion creates for the destinations, outermost first. Rollback removes them when empty. */
    createdDirectories: z.array(z.string()),
    /** Checkpoints of the replaced domain, whose metadata is dropped once the new definition is in place. */
    checkpoints: z.array(z.string()),
    /** The domain XML to define, kept so that recovery can define it again. It may contain secrets such as VNC passwords. */
    domainXml: z.string().min(1),
  })
  .strict();

export type PromotionJournal = z.infer<typeof journalSchema>;

export interface JournalPaths {
  dir: string;
  journal: string;
}

export function promotionsDir(stateDir: string): string {
  return join(stateDir, 'promotions');
}

export function journalPaths(stateDir: string, domain: string): JournalPaths {
  const dir = join(promotionsDir(stateDir), domain);
  return { dir, journal: join(dir, JOURNAL_FILE) };
}

/** A journal that cannot be written, read or trusted; the message names the path. */
export class JournalError extends HvError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super('promotion-journal', message, ExitCode.failure, options);
  }
}

/**
 * Creates the journal directory of a domain and writes the first journal.
 * The journal is on disk (fsync) before this returns, so the caller may
 * change the host afterwards. Throws when the domain has a journal already,
 * which recovery could not use, because overwriting it would lose what it
 * records.
 */
export async function createJournal(paths: JournalPaths, journal: PromotionJournal): Promise<void> {
  const existing = await lstat(paths.journal).catch(() => undefined);
  if (existing !== undefined) {
    throw new JournalError(`domain ${journal.domain} already has a promotion journal, ${paths.journal}, which recovery could not use`, {
      hint: `read the error about it above or run "hvbackup doctor"; settle the files it lists by hand, then remove ${paths.dir}`,
    });
  }

  try {
    // Execute permission for others lets the backup user see the journal and leave the domain alone (see hasJournal).
    await mkdir(paths.dir, { recursive: true, mode: 0o711 });
    await syncDirectory(join(paths.dir, '..'));
    await updateJournal(paths, journal);
  } catch (error) {
    throw new JournalError(`cannot write the promotion journal ${paths.journal}: ${(error as Error).message}`, {
      hint: 'stateDir must be writable by this user; nothing on the host was changed',
      cause: error,
    });
  }
}

/** Replaces the journal with a new step, durably: temporary file, fsync, rename, fsync of the directory. */
export async function updateJournal(paths: JournalPaths, journal: PromotionJournal): Promise<void> {
  await writeFileAtomic(paths.journal, `${JSON.stringify(journal, null, 2)}\n`, 0o600);
}

/**
 * Removes a settled promotion's journal, then its directory when nothing
 * else is in it. Removing the journal marks the promotion as settled. A run
 * killed after that leaves only an empty directory, or temporary files of
 * the journal writer, which the next recovery removes.
 */
export async function removeJournal(paths: JournalPaths): Promise<void> {
  await unlink(paths.journal).catch(ignoreMissing);
  await syncDirectory(paths.dir).catch(() => undefined);
  await removeJournalDirectory(paths);
}

/** Removes the journal writer's temporary files and the directory, if it is then empty. Returns whether the directory is gone. */
export async function removeJournalDirectory(paths: JournalPaths): Promise<boolean> {
  const names = await readdir(paths.dir).catch(() => [] as string[]);
  for (const name of names) {
    if (name.startsWith(`.${JOURNAL_FILE}.`) && name.endsWith('.tmp')) await unlink(join(paths.dir, name)).catch(ignoreMissing);
  }
  try {
    await rmdir(paths.dir);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return true;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw error;
  }
}

/**
 * Reads a journal, or returns undefined when the directory has none. The
 * ownership and mode are checked on the opened file, and the content is
 * read from that same file.
 */
export async function readJournal(paths: JournalPaths): Promise<PromotionJournal | undefined> {
  let text: string;
  try {
    const file = await open(paths.journal, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      checkTrusted(paths, await file.stat());
      text = await file.readFile('utf8');
    } finally {
      await file.close();
    }
  } catch (error) {
    if (error instanceof JournalError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new JournalError(`cannot read the promotion journal ${paths.journal}: ${(error as Error).message}`, {
      hint: `the journal must be a regular file; check ${paths.dir}`,
      cause: error,
    });
  }

  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw invalidJournal(paths, (error as Error).message);
  }
  const result = journalSchema.safeParse(parsed);
  if (!result.success) throw invalidJournal(paths, result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; '));
  return result.data;
}

/** Rejects a journal that someone other than root or this user could have written. */
function checkTrusted(paths: JournalPaths, info: { uid: number; mode: number; isFile(): boolean }): void {
  const uid = process.getuid?.() ?? 0;
  const hint = `recovery acts on this file as ${uid === 0 ? 'root' : `uid ${uid}`}, so it must have been written by hvbackup as root or as this user; check the paths it lists by hand, then remove ${paths.dir}`;
  if (!info.isFile()) throw new JournalError(`promotion journal ${paths.journal} is not a regular file`, { hint });
  if (info.uid !== 0 && info.uid !== uid) {
    throw new JournalError(`promotion journal ${paths.journal} belongs to uid ${info.uid}, not to root${uid === 0 ? '' : ` or uid ${uid}`}`, { hint });
  }
  if ((info.mode & 0o022) !== 0) {
    throw new JournalError(`promotion journal ${paths.journal} is writable by others (mode ${(info.mode & 0o777).toString(8)})`, { hint });
  }
}

function invalidJournal(paths: JournalPaths, reason: string): JournalError {
  // The journal is replaced by rename, so a torn write cannot cause this. Someone edited the file.
  return new JournalError(`promotion journal ${paths.journal} is invalid: ${reason}`, {
    hint: `compare the files it should list with the host by hand, then remove ${paths.dir}`,
  });
}

/** Names of the domains that have a journal directory under stateDir/promotions. */
export async function journalDomains(stateDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(promotionsDir(stateDir));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const domains: string[] = [];
  for (const name of names.sort()) {
    if ((await stat(join(promotionsDir(stateDir), name))).isDirectory()) domains.push(name);
  }
  return domains;
}

/**
 * Returns true when the domain has a journal, because a promotion of it is
 * running or was interrupted.
 * NOTE: a user that cannot enter stateDir/promotions, for example because
 * the restore ran with a umask that removes execute permission for others,
 * gets false.
 */
export async function hasJournal(stateDir: string, domain: string): Promise<boolean> {
  try {
    await stat(journalPaths(stateDir, domain).journal);
    return true;
  } catch {
    return false;
  }
}

/** Flushes a directory's entries (creations, renames, removals) to disk. */
export async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
}
