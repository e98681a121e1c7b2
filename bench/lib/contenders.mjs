/**
 * The contenders. Each has a name, a group (the target it belongs to), a
 * description and measure(round). measure prepares and cleans up untimed,
 * times only the command under test, and returns the sample with the bytes
 * stored (null where nothing is stored).
 */
import { chown, chmod, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { DOMAIN, pullExportXml, qemuGroupId, removeDomain, virsh } from './domain.mjs';
import { AWS, bucketBytes, createBucket, removeBucket, s3Environment } from './services.mjs';
import { gpgOptions, readJson } from './setup.mjs';
import { bash, directoryBytes, hvbackupCommand, quote, timed } from './shell.mjs';

/**
 * Returns bash lines that start a pull-mode export of vda on a unix socket
 * (what a hand-written script does with virsh backup-begin) and the NBD URI.
 * The export is part of the timed work, like hvbackup's own job set-up.
 */
function pullExport(dir) {
  const socket = join(dir, 'nbd.sock');
  const xml = join(dir, 'backup.xml');
  return {
    uri: `nbd+unix:///vda?socket=${socket}`,
    begin: `virsh -q -c qemu:///system backup-begin ${DOMAIN} ${quote(xml)} >/dev/null`,
    end: `virsh -c qemu:///system domjobabort ${DOMAIN}`,
    async prepare() {
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      // QEMU runs as libvirt-qemu and creates the socket and scratch file here.
      const group = await qemuGroupId();
      if (group !== undefined) await chown(dir, 0, group);
      await chmod(dir, 0o770);
      await writeFile(xml, pullExportXml(socket, join(dir, 'vda.scratch')));
    },
  };
}

/**
 * Returns the seconds from "restore requested" to "backup applied to
 * staging" in hvbackup's JSON log: the data path of a restore (download,
 * verification, decryption, writing the image), without `virsh define`.
 */
function stagingSeconds(log) {
  const times = {};
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line);
    if (entry.msg === 'restore requested') times.start = Date.parse(entry.time);
    if (entry.msg?.startsWith('backup applied to staging')) times.end = Date.parse(entry.time);
  }
  return times.start !== undefined && times.end !== undefined ? (times.end - times.start) / 1000 : undefined;
}

/** Aborts a pull export that a failed run left behind; no job is not an error. */
async function abortLeftoverJob() {
  await virsh('domjobabort', DOMAIN).catch(() => undefined);
}

export function createContenders(context) {
  const { cli, work, keys, s3, configs, runs } = context;
  const timeFile = join(work, 'time.txt');
  const logFile = join(work, 'commands.log');
  const exportDir = join(work, 'export');
  const gpgFile = join(work, 'stream.gpg');
  const gpg = gpgOptions(keys);
  const recipients = `-r ${keys.admin1Fingerprint} -r ${keys.admin2Fingerprint}`;
  const nbdStream = (uri) => `nbdcopy --allocated ${quote(uri)} -`;
  const s3Env = s3Environment(s3);
  const resticEnv = { ...s3Env, RESTIC_PASSWORD: 'hvb-bench-restic-password' };
  const hvbackup = (config, args) => hvbackupCommand(cli, config, args);
  /** Rejects a gpg -d contender run without the gpg-file output of the same round. */
  const requireGpgFile = (name) =>
    stat(gpgFile).catch(() => {
      throw new Error(`${name} needs the output of gpg-file from the same round; run both (--only gpg-file,${name})`);
    });
  const state = { localBackupId: undefined, round: 0 };

  const exportedRun = (name, group, pipeline, { env = {}, prepare = async () => {}, stored, cleanup = async () => {} }) => ({
    name,
    group,
    async measure(round) {
      const exported = pullExport(exportDir);
      await exported.prepare();
      await prepare(round);
      try {
        const result = await timed(`${exported.begin}\ntrap ${quote(exported.end + ' >/dev/null 2>&1 || true')} EXIT\n${pipeline(exported.uri, round)}`, { env, timeFile, logFile });
        return { ...result, storedBytes: await stored(round) };
      } finally {
        await abortLeftoverJob();
        await cleanup(round);
      }
    },
  });

  const resticRepository = (round, where) => (where === 'local' ? join(work, `restic-${round}`) : `s3:${s3.endpoint}/hvb-bench-restic-${round}`);

  return [
    {
      name: 'nbdcopy-null',
      group: 'reference',
      description: 'nbdcopy --allocated of the pull export to null: (reading the allocated extents alone)',
      ...exportedRun('nbdcopy-null', 'reference', (uri) => `nbdcopy --allocated ${quote(uri)} null:`, { stored: async () => null }),
    },
    {
      name: 'hvbackup-local',
      group: 'full-local',
      description: 'hvbackup backup --mode full to a local directory repository',
      async measure(round) {
        const repo = join(work, 'repo-local');
        // A new, empty repository each round; hvbackup expects the directory to exist.
        await rm(repo, { recursive: true, force: true });
        await mkdir(repo, { recursive: true });
        const output = join(work, 'backup.json');
        const result = await timed(`${hvbackup(configs.local, `backup --mode full --json ${DOMAIN}`)} > ${quote(output)}`, { timeFile, logFile });
        state.localBackupId = (await readJson(output))[0].backupId;
        state.round = round;
        return { ...result, storedBytes: await directoryBytes(repo) };
      },
    },
    {
      ...exportedRun('gpg-file', 'full-local', (uri) => `${nbdStream(uri)} | gpg ${gpg} --encrypt --sign ${recipients} --local-user ${keys.hostFingerprint} > ${quote(gpgFile)}`, {
        stored: async () => directoryBytes(gpgFile),
      }),
      description: 'nbdcopy --allocated URI - | gpg --encrypt --sign -r ADMIN1 -r ADMIN2 --local-user HOST > FILE',
    },
    {
      ...exportedRun('restic-local', 'full-local', (uri, round) => `${nbdStream(uri)} | restic -q -r ${quote(resticRepository(round, 'local'))} backup --stdin --stdin-filename vda.raw`, {
        env: resticEnv,
        prepare: (round) => bash(`restic -q -r ${quote(resticRepository(round, 'local'))} init`, { env: resticEnv }),
        stored: (round) => directoryBytes(resticRepository(round, 'local')),
        cleanup: (round) => rm(resticRepository(round, 'local'), { recursive: true, force: true }),
      }),
      description: 'nbdcopy --allocated URI - | restic backup --stdin to a local restic repository',
    },
    {
      name: 'virtnbdbackup',
      group: 'full-local',
      // `-l full` rejects a domain that has checkpoints it did not create (hvbackup's), so this is
      // `-l copy`: the same thin full read and stream format, without creating a checkpoint.
      description: 'virtnbdbackup -d DOMAIN -l copy -o DIR (thin stream file, no encryption, no checkpoint)',
      async measure(round) {
        const dir = join(work, `virtnbdbackup-${round}`);
        await rm(dir, { recursive: true, force: true });
        try {
          const result = await timed(`virtnbdbackup -d ${DOMAIN} -l copy -o ${quote(dir)} --noprogress`, { timeFile, logFile });
          return { ...result, storedBytes: await directoryBytes(dir) };
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      },
    },
    {
      name: 'hvbackup-restore',
      group: 'restore',
      description: 'hvbackup restore --yes --as NAME --storage-dir DIR of the hvbackup-local backup',
      async measure(round) {
        if (state.localBackupId === undefined || state.round !== round) throw new Error('hvbackup-restore needs the hvbackup-local backup of the same round; run both (--only hvbackup-local,hvbackup-restore)');
        const name = `hvb-bench-restore-${round}`;
        const dir = join(work, `restored-${round}`);
        await mkdir(dir, { recursive: true });
        await chmod(dir, 0o711);
        try {
          const result = await timed(`${hvbackup(configs.local, `restore --yes --as ${name} --storage-dir ${quote(dir)} ${state.localBackupId}`)} >/dev/null`, { timeFile, logFile });
          return { ...result, storedBytes: await directoryBytes(dir), stagingSeconds: stagingSeconds(result.output) };
        } finally {
          await removeDomain(name);
          await rm(dir, { recursive: true, force: true });
        }
      },
    },
    {
      name: 'gpg-decrypt-null',
      group: 'restore',
      description: 'gpg -d FILE > /dev/null of the gpg-file output (decryption and signature check alone, nothing written)',
      async measure() {
        await requireGpgFile('gpg-decrypt-null');
        const result = await timed(`gpg ${gpg} -d ${quote(gpgFile)} > /dev/null`, { timeFile, logFile });
        return { ...result, storedBytes: null };
      },
    },
    {
      name: 'gpg-decrypt',
      group: 'restore',
      description: 'gpg -d FILE > RAW of the gpg-file output (decrypt, check the signature, write the raw disk to a file)',
      async measure() {
        await requireGpgFile('gpg-decrypt');
        const rawFile = join(work, 'decrypted.raw');
        try {
          const result = await timed(`gpg ${gpg} -d ${quote(gpgFile)} > ${quote(rawFile)}`, { timeFile, logFile });
          return { ...result, storedBytes: await directoryBytes(rawFile) };
        } finally {
          await rm(gpgFile, { force: true });
          await rm(rawFile, { force: true });
        }
      },
    },
    {
      name: 'upload-plain',
      group: 'full-rgw',
      description: 'aws s3 cp FILE s3://... of a file as large as the allocated data (multipart upload, no encryption)',
      async measure(round) {
        const file = join(work, 'plain.bin');
        const bucket = `hvb-bench-plain-${round}`;
        await bash(`head -c ${context.allocatedBytes} /dev/urandom > ${quote(file)}`);
        await createBucket(s3, bucket);
        try {
          const result = await timed(`${AWS} --endpoint-url ${s3.endpoint} s3 cp --only-show-errors ${quote(file)} s3://${bucket}/plain.bin`, { env: s3Env, timeFile, logFile });
          return { ...result, storedBytes: await bucketBytes(s3, bucket) };
        } finally {
          await rm(file, { force: true });
          await removeBucket(s3, bucket);
        }
      },
    },
    {
      name: 'hvbackup-rgw',
      group: 'full-rgw',
      description: 'hvbackup backup --mode full to an S3 repository on the local RGW',
      async measure(round) {
        const bucket = `hvb-bench-hvbackup-${round}`;
        await createBucket(s3, bucket);
        try {
          const config = await configs.s3(bucket);
          const result = await timed(`${hvbackup(config, `backup --mode full --json ${DOMAIN}`)} >/dev/null`, { env: s3Env, timeFile, logFile });
          return { ...result, storedBytes: await bucketBytes(s3, bucket) };
        } finally {
          await removeBucket(s3, bucket);
        }
      },
    },
    {
      ...exportedRun(
        'gpg-aws',
        'full-rgw',
        (uri, round) => `${nbdStream(uri)} | gpg ${gpg} --encrypt --sign ${recipients} --local-user ${keys.hostFingerprint} | ${AWS} --endpoint-url ${s3.endpoint} s3 cp --only-show-errors - s3://hvb-bench-gpg-${round}/vda.gpg`,
        {
          env: s3Env,
          prepare: (round) => createBucket(s3, `hvb-bench-gpg-${round}`),
          stored: (round) => bucketBytes(s3, `hvb-bench-gpg-${round}`),
          cleanup: (round) => removeBucket(s3, `hvb-bench-gpg-${round}`),
        },
      ),
      description: 'nbdcopy --allocated URI - | gpg --encrypt --sign ... | aws s3 cp - s3://bucket/key',
    },
    {
      ...exportedRun('restic-rgw', 'full-rgw', (uri, round) => `${nbdStream(uri)} | restic -q -r ${quote(resticRepository(round, 's3'))} backup --stdin --stdin-filename vda.raw`, {
        env: resticEnv,
        prepare: async (round) => {
          await createBucket(s3, `hvb-bench-restic-${round}`);
          await bash(`restic -q -r ${quote(resticRepository(round, 's3'))} init`, { env: resticEnv });
        },
        stored: (round) => bucketBytes(s3, `hvb-bench-restic-${round}`),
        cleanup: (round) => removeBucket(s3, `hvb-bench-restic-${round}`),
      }),
      description: 'nbdcopy --allocated URI - | restic backup --stdin to a restic repository on the local RGW',
    },
  ].map((contender) => ({ runs, ...contender }));
}
