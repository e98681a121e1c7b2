/**
 * Virsh retries while libvirtd is unreachable, against a stand-in `virsh`
 * script first on PATH. The script fails the first N calls with the message
 * it is given and then prints "ok", and it counts its calls in a file.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { isWithoutVerdict, Virsh, VirshCommandError } from '../../src/libvirt/virsh.js';
import type { Logger } from '../../src/log/logger.js';

const CONNECT_FAILURE = "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': Connection refused";
const CONNECTION_LOST = 'error: End of file while reading data: Input/output error';

const FAKE_VIRSH = `#!/bin/sh
count=$(cat "$FAKE_VIRSH_DIR/calls" 2>/dev/null || echo 0)
count=$((count + 1))
echo "$count" > "$FAKE_VIRSH_DIR/calls"
if [ "$count" -le "$FAKE_VIRSH_FAILURES" ]; then
  printf '%s\\n' "$FAKE_VIRSH_STDERR" >&2
  exit 1
fi
echo ok
`;

describe('Virsh retries', () => {
  let dir: string;
  const saved = { ...process.env };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hvb-fake-virsh-'));
    await writeFile(join(dir, 'virsh'), FAKE_VIRSH);
    await chmod(join(dir, 'virsh'), 0o755);
    process.env.PATH = `${dir}:${process.env.PATH}`;
    process.env.FAKE_VIRSH_DIR = dir;
  });

  afterAll(async () => {
    process.env = saved;
    await rm(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    await rm(join(dir, 'calls'), { force: true });
  });

  function failFirst(count: number, stderr: string): void {
    process.env.FAKE_VIRSH_FAILURES = String(count);
    process.env.FAKE_VIRSH_STDERR = stderr;
  }

  async function calls(): Promise<number> {
    return Number(await readFile(join(dir, 'calls'), 'utf8'));
  }

  it('connect failures retried until success', async () => {
    failFirst(2, CONNECT_FAILURE);
    const virsh = new Virsh({ reconnectMs: 10_000 });

    expect((await virsh.run(['backup-begin', 'web1', '/tmp/backup.xml'])).trim()).toBe('ok');
    expect(await calls()).toBe(3);
  });

  it('retry warning is one short line', async () => {
    failFirst(2, CONNECT_FAILURE);
    const warnings: { fields: Record<string, unknown>; message: string }[] = [];
    const logger = { warn: (fields: Record<string, unknown>, message: string) => warnings.push({ fields, message }) } as unknown as Logger;
    const virsh = new Virsh({ reconnectMs: 10_000, logger });

    await virsh.run(['domjobinfo', 'web1'], { domain: 'web1' });

    expect(warnings).toHaveLength(2);
    for (const { fields, message } of warnings) {
      expect(message).toMatch(/^libvirtd is unreachable \(.+\); retrying virsh domjobinfo in \d+ ms$/);
      expect(message).not.toContain('\n');
      expect(Object.keys(fields).sort()).toEqual(['attempt', 'command', 'delayMs', 'domain']);
    }
  });

  it('no retry without reconnectMs', async () => {
    failFirst(1, CONNECT_FAILURE);
    const virsh = new Virsh();

    await expect(virsh.run(['domjobinfo', 'web1'])).rejects.toThrow(/failed to connect to the hypervisor/);
    expect(await calls()).toBe(1);
  });

  it('lost connection retries repeatable command', async () => {
    failFirst(1, CONNECTION_LOST);
    const virsh = new Virsh({ reconnectMs: 10_000 });

    expect((await virsh.run(['domjobabort', 'web1'])).trim()).toBe('ok');
    expect(await calls()).toBe(2);
  });

  it('lost connection fails other commands', async () => {
    failFirst(1, CONNECTION_LOST);
    const virsh = new Virsh({ reconnectMs: 10_000 });

    const error = await virsh.run(['backup-begin', 'web1', '/tmp/backup.xml']).catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(VirshCommandError);
    expect(isWithoutVerdict(error)).toBe(true);
    expect(await calls()).toBe(1);
  });

  it('gives up after reconnectMs', async () => {
    failFirst(1000, CONNECT_FAILURE);
    const virsh = new Virsh({ reconnectMs: 1_200 });
    const started = Date.now();

    const error = (await virsh.run(['domjobinfo', 'web1'], { domain: 'web1' }).catch((failure: unknown) => failure)) as VirshCommandError;

    expect(error).toBeInstanceOf(VirshCommandError);
    expect(error.message).toMatch(/libvirtd unreachable for \d+ s, \d+ attempts/);
    expect(error.hint).toContain('systemctl start libvirtd');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await calls()).toBeGreaterThan(1);
  });

  it('other failures not retried', async () => {
    failFirst(1, "error: failed to get domain 'web1'");
    const virsh = new Virsh({ reconnectMs: 10_000 });

    await expect(virsh.run(['domjobinfo', 'web1'])).rejects.toThrow(/failed to get domain/);
    expect(await calls()).toBe(1);
  });
});
