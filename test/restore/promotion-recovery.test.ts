/**
 * Settling promotion journals without libvirtd: the files are real, in a
 * temporary directory, and libvirt is a scripted Virsh whose commands the
 * tests choose to succeed or fail. The kill trials against the real
 * libvirtd are in test/faults/promotion-crash.test.ts.
 */
import { chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { Domains } from '../../src/libvirt/domains.js';
import { Virsh, VirshCommandError, type VirshRunOptions } from '../../src/libvirt/virsh.js';
import { createLogger } from '../../src/log/logger.js';
import { createJournal, journalPaths, JOURNAL_FORMAT, JOURNAL_VERSION, type PromotionJournal } from '../../src/restore/promotion-journal.js';
import { recoverPromotions, settlePromotion } from '../../src/restore/promotion-recovery.js';

/** A Virsh whose commands return what `respond` returns, or throw what it throws; every call is recorded. */
class ScriptedVirsh extends Virsh {
  readonly calls: string[][] = [];

  constructor(private readonly respond: (args: string[]) => string) {
    super();
  }

  override async run(args: string[], _options: VirshRunOptions = {}): Promise<string> {
    this.calls.push(args);
    return this.respond(args);
  }
}

function virshFailure(args: string[], stderr: string): VirshCommandError {
  return new VirshCommandError(`virsh ${args.join(' ')} failed: ${stderr}`, { args, domain: 'web1', stderr });
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('promotion recovery', () => {
  let dir: string;
  let stateDir: string;
  let images: string;
  const logger = createLogger({ format: 'json', level: 'silent' });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hvb-promotion-'));
    stateDir = join(dir, 'state');
    images = join(dir, 'images');
    await mkdir(images);
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * Writes a journal for domain web1 with two files: `vda` replaces an
   * existing image (set aside under `vda.aside`), and `nvram` is new, in a
   * directory the promotion created.
   */
  async function plantJournal(step: PromotionJournal['step'], checkpoints: string[] = []): Promise<PromotionJournal> {
    const journal: PromotionJournal = {
      format: JOURNAL_FORMAT,
      version: JOURNAL_VERSION,
      domain: 'web1',
      uuid: '4e1a84a0-c020-4ec3-8f80-c8858eedb3fa',
      pid: 999_999_999,
      startedAt: '2026-12-04T02:00:00.000Z',
      step,
      files: [
        { staged: join(dir, 'staging', 'vda.qcow2'), destination: join(images, 'vda'), aside: join(images, 'vda.aside') },
        { staged: join(dir, 'staging', 'nvram.fd'), destination: join(images, 'new', 'nvram'), aside: null },
      ],
      createdDirectories: [join(images, 'new')],
      checkpoints,
      domainXml: '<domain><name>web1</name></domain>',
    };
    await createJournal(journalPaths(stateDir, 'web1'), journal);
    return journal;
  }

  /** Leaves the files as a promotion does after all its moves: new content in place, the old image set aside. */
  async function placeFiles(): Promise<void> {
    await writeFile(join(images, 'vda.aside'), 'old image');
    await writeFile(join(images, 'vda'), 'restored image');
    await mkdir(join(images, 'new'));
    await writeFile(join(images, 'new', 'nvram'), 'restored nvram');
  }

  it('moving step rolls back', async () => {
    const journal = await plantJournal('moving');
    await placeFiles();
    const virsh = new ScriptedVirsh(() => {
      throw new Error('virsh must not run while rolling back');
    });

    const settled = await settlePromotion(journal, journalPaths(stateDir, 'web1'), { virsh, domains: new Domains(virsh) });

    expect(settled.result).toBe('rolled-back');
    expect(await readFile(join(images, 'vda'), 'utf8')).toBe('old image');
    expect(await exists(join(images, 'vda.aside'))).toBe(false);
    expect(await exists(join(images, 'new'))).toBe(false);
    expect(virsh.calls).toEqual([]);
  });

  it('rollback keeps unmoved original', async () => {
    // Killed before the first rename: the original is still in place and nothing is set aside.
    const journal = await plantJournal('moving');
    await writeFile(join(images, 'vda'), 'old image');
    const virsh = new ScriptedVirsh(() => '');

    const settled = await settlePromotion(journal, journalPaths(stateDir, 'web1'), { virsh, domains: new Domains(virsh) });

    expect(settled.actions).toEqual([]);
    expect(await readFile(join(images, 'vda'), 'utf8')).toBe('old image');
  });

  it('defining step defines and finishes', async () => {
    const journal = await plantJournal('defining', ['hvbackup-20261201T020000Z-a1b2c3']);
    await placeFiles();
    const virsh = new ScriptedVirsh((args) => (args[0] === 'checkpoint-list' ? 'hvbackup-20261201T020000Z-a1b2c3\n' : ''));
    const paths = journalPaths(stateDir, 'web1');

    const settled = await settlePromotion(journal, paths, { virsh, domains: new Domains(virsh) });

    expect(settled.result).toBe('completed');
    expect(virsh.calls).toEqual([
      ['define', expect.stringMatching(/domain\.xml$/)],
      ['checkpoint-list', 'web1', '--name'],
      ['checkpoint-delete', 'web1', 'hvbackup-20261201T020000Z-a1b2c3', '--metadata'],
    ]);
    expect(await readFile(join(images, 'vda'), 'utf8')).toBe('restored image');
    expect(await exists(join(images, 'vda.aside'))).toBe(false);
    expect(await readFile(join(images, 'new', 'nvram'), 'utf8')).toBe('restored nvram');
  });

  it('rejected definition rolls back', async () => {
    const journal = await plantJournal('defining');
    await placeFiles();
    const virsh = new ScriptedVirsh((args) => {
      throw virshFailure(args, "error: XML error: unknown OS type 'hvm2'");
    });

    const settled = await settlePromotion(journal, journalPaths(stateDir, 'web1'), { virsh, domains: new Domains(virsh) });

    expect(settled.result).toBe('rolled-back');
    expect(settled.actions[0]).toContain('libvirt rejected the definition');
    expect(await readFile(join(images, 'vda'), 'utf8')).toBe('old image');
    expect(await exists(join(images, 'new', 'nvram'))).toBe(false);
  });

  it('defined step skips the define', async () => {
    const journal = await plantJournal('defined');
    await placeFiles();
    const virsh = new ScriptedVirsh(() => '');

    const settled = await settlePromotion(journal, journalPaths(stateDir, 'web1'), { virsh, domains: new Domains(virsh) });

    expect(settled.result).toBe('completed');
    expect(virsh.calls).toEqual([]);
    expect(await exists(join(images, 'vda.aside'))).toBe(false);
  });

  it('recover removes settled journal', async () => {
    await plantJournal('moving');
    await placeFiles();
    const virsh = new ScriptedVirsh(() => '');

    const outcomes = await recoverPromotions({ stateDir }, { logger, libvirt: { virsh, domains: new Domains(virsh) } });

    expect(outcomes).toEqual([expect.objectContaining({ domain: 'web1', result: 'rolled-back' })]);
    expect(await exists(journalPaths(stateDir, 'web1').dir)).toBe(false);
    expect(await exists(join(stateDir, 'locks', 'web1.lock'))).toBe(false);
  });

  it('unreachable libvirtd keeps journal', async () => {
    await plantJournal('defining');
    await placeFiles();
    const virsh = new ScriptedVirsh((args) => {
      throw virshFailure(args, "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': Connection refused");
    });

    await expect(recoverPromotions({ stateDir }, { logger, libvirt: { virsh, domains: new Domains(virsh) } })).rejects.toThrow(/failed to connect/);

    expect(await exists(journalPaths(stateDir, 'web1').journal)).toBe(true);
    expect(await readFile(join(images, 'vda'), 'utf8')).toBe('restored image');
    expect(await exists(join(images, 'vda.aside'))).toBe(true);
  });

  it('live owner keeps journal', async () => {
    await plantJournal('moving');
    await placeFiles();
    // The lock of a live process: the test runner's parent.
    await mkdir(join(stateDir, 'locks'), { recursive: true });
    await writeFile(join(stateDir, 'locks', 'web1.lock'), `${process.ppid}\n`);
    const virsh = new ScriptedVirsh(() => '');

    const outcomes = await recoverPromotions({ stateDir }, { logger, libvirt: { virsh, domains: new Domains(virsh) } });

    expect(outcomes).toEqual([{ domain: 'web1', result: 'in-progress', actions: [] }]);
    expect(await exists(journalPaths(stateDir, 'web1').journal)).toBe(true);
    expect(await readFile(join(images, 'vda'), 'utf8')).toBe('restored image');
  });

  it('directory without journal swept', async () => {
    // A journal writer killed before its rename leaves only its temporary file.
    const paths = journalPaths(stateDir, 'web1');
    await mkdir(paths.dir, { recursive: true });
    await writeFile(join(paths.dir, '.journal.json.0a1b2c3d4e5f.tmp'), '{');
    const virsh = new ScriptedVirsh(() => '');

    const outcomes = await recoverPromotions({ stateDir }, { logger, libvirt: { virsh, domains: new Domains(virsh) } });

    expect(outcomes).toEqual([{ domain: 'web1', result: 'swept', actions: [] }]);
    expect(await exists(paths.dir)).toBe(false);
  });

  it('sweep keeps unknown files', async () => {
    const paths = journalPaths(stateDir, 'web1');
    await mkdir(paths.dir, { recursive: true });
    await writeFile(join(paths.dir, 'notes.txt'), 'not written by hvbackup');
    const virsh = new ScriptedVirsh(() => '');

    await recoverPromotions({ stateDir }, { logger, libvirt: { virsh, domains: new Domains(virsh) } });

    expect(await readFile(join(paths.dir, 'notes.txt'), 'utf8')).toBe('not written by hvbackup');
  });

  it('edited journal rejected with path', async () => {
    const paths = journalPaths(stateDir, 'web1');
    await mkdir(paths.dir, { recursive: true });
    await writeFile(paths.journal, JSON.stringify({ format: JOURNAL_FORMAT, version: JOURNAL_VERSION, domain: 'web1' }));
    const virsh = new ScriptedVirsh(() => '');

    const outcomes = await recoverPromotions({ stateDir }, { logger, libvirt: { virsh, domains: new Domains(virsh) } });

    expect(outcomes).toEqual([expect.objectContaining({ domain: 'web1', result: 'unusable' })]);
    expect(outcomes[0]!.error).toContain(paths.journal);
    expect(await exists(paths.journal)).toBe(true);
  });

  it.skipIf(process.getuid?.() !== 0)('foreign journal not trusted', async () => {
    // A journal another user wrote, such as the backup user who owns stateDir, must not steer renames and removals.
    await plantJournal('moving');
    await placeFiles();
    const paths = journalPaths(stateDir, 'web1');
    await chown(paths.journal, 65534, 65534);
    const virsh = new ScriptedVirsh(() => '');

    const outcomes = await recoverPromotions({ stateDir }, { logger, libvirt: { virsh, domains: new Domains(virsh) } });

    expect(outcomes[0]!.result).toBe('unusable');
    expect(outcomes[0]!.error).toContain('belongs to uid 65534');
    expect(await readFile(join(images, 'vda'), 'utf8')).toBe('restored image');
    expect(await exists(join(images, 'vda.aside'))).toBe(true);
  });

  it('second journal of a domain rejected', async () => {
    const journal = await plantJournal('moving');

    await expect(createJournal(journalPaths(stateDir, 'web1'), journal)).rejects.toThrow(/already has a promotion journal/);
  });
});
