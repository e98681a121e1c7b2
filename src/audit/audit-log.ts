/**
 * The audit trail: one JSON object per line, appended to a file that only
 * grows (open with O_APPEND, one write per event, fsync), and mirrored into
 * the structured log. Events record who acted (uid, user name, the sudo
 * user behind a root shell), what was done to which backup, why, the result
 * and the duration. Secrets never reach an event: callers pass ids, paths
 * and messages only.
 */
import { mkdir, open } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';

import type { Logger } from '../log/logger.js';

export type AuditAction =
  | 'backup'
  | 'restore-request'
  | 'restore-refused'
  | 'verification'
  | 'promotion'
  | 'promotion-recovery'
  | 'restore'
  | 'deletion'
  | 'drill';

export type AuditResult = 'started' | 'ok' | 'failed' | 'refused';

export interface AuditEvent {
  action: AuditAction;
  result: AuditResult;
  domain?: string;
  backupId?: string;
  host?: string;
  reason?: string;
  check?: string;
  object?: string;
  error?: string;
  durationMs?: number;
  details?: Record<string, unknown>;
}

export interface Actor {
  uid: number;
  user: string;
  sudoUser?: string;
  sudoUid?: number;
  pid: number;
}

export function currentActor(): Actor {
  const info = userInfo();
  const sudoUid = process.env.SUDO_UID === undefined ? undefined : Number(process.env.SUDO_UID);
  return {
    uid: info.uid,
    user: info.username,
    sudoUser: process.env.SUDO_USER,
    sudoUid: Number.isInteger(sudoUid) ? sudoUid : undefined,
    pid: process.pid,
  };
}

export class AuditLog {
  private readonly actor = currentActor();

  constructor(
    private readonly path: string | undefined,
    private readonly logger: Logger,
  ) {}

  /** Appends one event. A failure to write the audit file is logged and raised: an unaudited restore must not go on. */
  async record(event: AuditEvent): Promise<void> {
    const line = { time: new Date().toISOString(), ...this.actor, ...event };
    // The logger adds its own time field.
    this.logger.info({ audit: true, ...this.actor, ...event }, `audit: ${event.action} ${event.result}`);
    if (!this.path) return;

    await mkdir(dirname(this.path), { recursive: true, mode: 0o750 });
    const file = await open(this.path, 'a', 0o640);
    try {
      await file.write(`${JSON.stringify(line)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
  }
}
