/**
 * The configuration file schema. One JSON file serves the backup host (keys
 * to sign and recipients to encrypt to) and the administrator (trusted
 * signers and the admin key for restore). Each command checks only the keys
 * it needs, so a backup host's file need not name any secret admin key.
 */
import { z } from 'zod';

import { NAME_PATTERN } from '../manifest/layout.js';
import { DISK_TARGET_PATTERN } from '../manifest/schema.js';

const fingerprint = z
  .string()
  .transform((value) => value.replace(/\s+/g, '').toUpperCase())
  .refine((value) => /^[0-9A-F]{40}$|^[0-9A-F]{64}$/.test(value), {
    message: 'expected an OpenPGP v4 (40 hex digits) or v6 (64 hex digits) fingerprint',
  });

const diskTarget = z
  .string({ error: 'expected a disk target in quotes, for example "vdb"' })
  .regex(
    DISK_TARGET_PATTERN,
    'expected a disk target as `virsh domblklist DOMAIN` lists it, for example "vdb": a lower-case letter, then 1 to 15 lower-case letters or digits',
  );

/** Disk targets to leave out of the backups of each domain, keyed by domain name. */
const excludeDisks = z.record(
  z.string().regex(NAME_PATTERN),
  z
    .array(diskTarget, { error: 'expected a list of disk targets, for example ["vdb"]' })
    .superRefine((targets, context) => {
      const repeated = targets.filter((target, index) => targets.indexOf(target) !== index);
      for (const target of new Set(repeated)) {
        context.addIssue({ code: 'custom', message: `disk target "${target}" is listed more than once, but each target may be listed only once` });
      }
    }),
  {
    error: (issue) => {
      if (issue.code === 'invalid_key') {
        return `invalid domain name ${JSON.stringify(issue.input)}: expected a name as \`virsh list --all\` shows it, of letters, digits, ".", "_", "+" and "-", starting with a letter or digit`;
      }
      if (issue.code === 'invalid_type') return 'expected an object that maps domain names to lists of disk targets, for example { "web1": ["vdb"] }';
      return undefined;
    },
  },
);

const localRepository = z
  .object({
    type: z.literal('local'),
    path: z.string().min(1),
  })
  .strict();

const objectLock = z
  .object({
    mode: z.enum(['GOVERNANCE', 'COMPLIANCE']),
    days: z.number().int().positive().max(36500),
  })
  .strict();

const s3Repository = z
  .object({
    type: z.literal('s3'),
    bucket: z.string().min(3).max(63),
    prefix: z.string().default(''),
    endpoint: z.url().optional(),
    region: z.string().default('us-east-1'),
    forcePathStyle: z.boolean().default(false),
    objectLock: objectLock.optional(),
  })
  .strict();

const concurrency = z
  .object({
    /** Worker threads that encrypt or decrypt segments. */
    workers: z.number().int().min(0).max(64).optional(),
    /** Segment uploads in flight, beyond the segments the workers encrypt; each costs one segment buffer. */
    uploads: z.number().int().min(1).max(64).default(1),
    /** Segment downloads in flight during restore (read-ahead). */
    downloads: z.number().int().min(1).max(64).default(3),
    /** NBD read requests in flight per disk. */
    reads: z.number().int().min(1).max(16).default(4),
    /** Domains backed up at the same time. */
    domains: z.number().int().min(1).max(16).default(1),
  })
  .strict();

/** Keep count for prune, as in restic's forget: -1 keeps one backup of every period. */
const keepCount = z.number().int().min(-1);

const retention = z
  .object({
    keepLast: keepCount.optional(),
    keepHourly: keepCount.optional(),
    keepDaily: keepCount.optional(),
    keepWeekly: keepCount.optional(),
    keepMonthly: keepCount.optional(),
    keepYearly: keepCount.optional(),
    /** Hours after its newest object before prune removes an unfinished backup (no manifest). */
    unfinishedGraceHours: z.number().positive().default(24),
  })
  .strict();

/** Recovery targets of a drill, in seconds. */
const drillTargets = z
  .object({
    /** Largest accepted age of the latest restorable backup (now minus its snapshotAt). */
    rpoSeconds: z.number().positive(),
    /** Largest accepted time from the start of the restore until the sandbox domain runs. */
    rtoSeconds: z.number().positive(),
  })
  .strict();

const drill = z
  .object({
    /** Directory for the staging area and the scratch disks of each drill; must not hold anything else. */
    sandboxDir: z.string().default('/var/lib/hvbackup-drill'),
    /** Secret drill key file; default $CREDENTIALS_DIRECTORY/drill-key when that file exists, else adminKey. */
    keyFile: z.string().optional(),
    /** Prometheus textfile that drill rewrites after each run; none when unset. */
    metricsFile: z.string().optional(),
    /** Targets of every domain without its own entry in `domains`. */
    defaults: drillTargets.default({ rpoSeconds: 93_600, rtoSeconds: 3_600 }),
    /** Per-domain targets; a domain may set only one of the two and inherit the other. */
    domains: z.record(z.string(), drillTargets.partial()).default({}),
    bootCheck: z
      .object({
        /** Seconds to wait for the sandbox domain to reach "running" after `virsh start`. */
        runningTimeoutSeconds: z.number().positive().default(60),
        /** Also require an answer to the QEMU guest agent's guest-ping. */
        guestAgent: z.boolean().default(false),
        /** Seconds to wait for the guest agent, counted from "running". */
        guestAgentTimeoutSeconds: z.number().positive().default(120),
      })
      .strict()
      .default({ runningTimeoutSeconds: 60, guestAgent: false, guestAgentTimeoutSeconds: 120 }),
  })
  .strict();

export const configSchema = z
  .object({
    /** Name of this host in the repository layout; defaults to os.hostname(). */
    host: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'expected a host name of letters, digits, ".", "_" and "-"')
      .optional(),
    repository: z.discriminatedUnion('type', [localRepository, s3Repository]),
    libvirt: z.object({ uri: z.string().default('qemu:///system') }).strict().default({ uri: 'qemu:///system' }),
    scratchDir: z.string().default('/var/lib/hvbackup/scratch'),
    stagingDir: z.string().default('/var/lib/hvbackup/staging'),
    stateDir: z.string().default('/var/lib/hvbackup'),
    /** Secret host key file that signs segments and manifests (backup host). */
    signingKey: z.string().optional(),
    /** Public key files of every administrator; each backup is encrypted to all of them. */
    recipients: z.array(z.string()).default([]),
    /** Pinned fingerprints of host keys whose backups this administrator trusts. */
    trustedSigners: z.array(fingerprint).default([]),
    /** Secret admin key file used by restore. */
    adminKey: z.string().optional(),
    /** GnuPG home for `restore --decrypt-with gpg`; default: $GNUPGHOME or ~/.gnupg of the user who restores. */
    gpgHome: z.string().optional(),
    /** Repository traffic of one run in bytes per second, as a number or a size such as "50MiB"; unlimited when absent. */
    bandwidthLimit: z.union([z.number().int().positive(), z.string()]).optional(),
    /** Plaintext bytes per segment, as a number or a size such as "16MiB". */
    segmentSize: z.union([z.number().int().positive(), z.string()]).default('16MiB'),
    encryption: z.object({ aead: z.boolean().default(false) }).strict().default({ aead: false }),
    /** When `--mode auto` starts a new full backup instead of another incremental. */
    chain: z
      .object({
        maxLength: z.number().int().min(0).max(1000).default(14),
        maxAgeDays: z.number().positive().default(30),
      })
      .strict()
      .default({ maxLength: 14, maxAgeDays: 30 }),
    concurrency: concurrency.default({ uploads: 1, downloads: 3, reads: 4, domains: 1 }),
    /** Disk targets that backups leave out, per domain name. docs/configuration.md describes what restore does with them. */
    excludeDisks: excludeDisks.default({}),
    /** What prune keeps. Prune rejects a configuration without it. */
    retention: retention.optional(),
    /** Repository size limit in bytes or as a size such as "500GiB"; backup warns at 80% and stops at 95%. */
    quota: z.union([z.number().int().positive(), z.string()]).optional(),
    /** Prometheus textfile that backup rewrites after each run, for node_exporter's textfile collector. */
    metricsFile: z.string().optional(),
    /** The unprivileged user of the nightly backup; restore and drill refuse to run as it. */
    backupUser: z.string().min(1).default('hvbackup'),
    /** Members of this group (and root) may restore and drill. */
    adminGroup: z.string().min(1).default('hvbackup-admin'),
    /** A dedicated user that may run `hvbackup drill` with its own drill key. */
    drillUser: z.string().min(1).optional(),
    /** Append-only JSON-lines audit file; none when null. */
    auditFile: z.string().nullable().default('/var/log/hvbackup/audit.jsonl'),
    /** Restore drills: sandbox, targets and checks of `hvbackup drill`. */
    drill: drill.default({
      sandboxDir: '/var/lib/hvbackup-drill',
      defaults: { rpoSeconds: 93_600, rtoSeconds: 3_600 },
      domains: {},
      bootCheck: { runningTimeoutSeconds: 60, guestAgent: false, guestAgentTimeoutSeconds: 120 },
    }),
    restore: z
      .object({
        /** Restoring a backup older than this many days needs --allow-rollback. */
        maxAgeDays: z.number().positive().default(30),
      })
      .strict()
      .default({ maxAgeDays: 30 }),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
