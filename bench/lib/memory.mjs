/**
 * Peak RSS of hvbackup backup and restore per allocated size, each on a
 * fresh hvb-bench-src whose virtual size is twice the allocated size. Runs
 * a size only if the file system has room for the image, the repository and the
 * restored copy (3.2 times the allocated size), and deletes all three after.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { DOMAIN, prepareDomain, removeDomain } from './domain.mjs';
import { readJson, writeConfig } from './setup.mjs';
import { bash, hvbackupCommand, quote, timed } from './shell.mjs';

async function freeBytes(path) {
  return Number((await bash(`df --output=avail -B1 ${quote(path)} | tail -1`)).trim());
}

export async function measureMemory({ cli, work, keys, sizes, log, extra = {} }) {
  const rows = [];
  const timeFile = join(work, 'time.txt');
  for (const size of sizes) {
    const needed = 3.2 * size.bytes;
    const free = await freeBytes(work);
    if (free < needed) {
      log(`memory: skipping ${size.label}: ${(free / 1024 ** 3).toFixed(1)} GiB free, ${(needed / 1024 ** 3).toFixed(1)} GiB needed`);
      continue;
    }

    const dir = join(work, `memory-${size.label}`);
    const repo = join(dir, 'repo');
    const restored = join(dir, 'restored');
    try {
      log(`memory: preparing ${size.label} allocated`);
      await prepareDomain(join(dir, 'domain'), { virtualBytes: 2 * size.bytes, allocatedBytes: size.bytes });
      await mkdir(repo, { recursive: true });
      const config = await writeConfig(work, `memory-${size.label}-config`, keys, { type: 'local', path: repo }, extra);
      const hvbackup = (args) => hvbackupCommand(cli, config, args);

      const output = join(dir, 'backup.json');
      const backup = await timed(`${hvbackup(`backup --mode full --json ${DOMAIN}`)} > ${quote(output)}`, { timeFile });
      const [summary] = await readJson(output);
      await removeDomain(DOMAIN);
      await rm(join(dir, 'domain'), { recursive: true, force: true });

      await mkdir(restored, { recursive: true });
      await chmod(restored, 0o711);
      const restore = await timed(`${hvbackup(`restore --yes --as hvb-bench-restore-memory --storage-dir ${quote(restored)} ${summary.backupId}`)} >/dev/null`, { timeFile });
      rows.push({
        label: size.label,
        virtualLabel: `${(2 * size.bytes) / 1024 ** 3} GiB`,
        backupWall: backup.wallSeconds,
        backupRssMiB: backup.peakRssBytes / 1048576,
        restoreWall: restore.wallSeconds,
        restoreRssMiB: restore.peakRssBytes / 1048576,
      });
      log(`memory: ${size.label}: backup RSS ${(backup.peakRssBytes / 1048576).toFixed(0)} MiB, restore RSS ${(restore.peakRssBytes / 1048576).toFixed(0)} MiB`);
    } finally {
      await removeDomain('hvb-bench-restore-memory');
      await removeDomain(DOMAIN);
      await rm(dir, { recursive: true, force: true });
    }
  }
  return rows;
}
