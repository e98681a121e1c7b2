/** Creates a host key and admin keys for a test, in files with the modes hvbackup expects. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { generateAdminKey, generateHostKey } from '../../src/crypto/index.js';

export interface TestKeys {
  dir: string;
  hostSecret: string;
  hostPublic: string;
  hostFingerprint: string;
  adminSecret: string;
  adminPublic: string;
  adminFingerprint: string;
}

export async function createTestKeys(dir: string, adminName = 'alice'): Promise<TestKeys> {
  const host = await generateHostKey({ name: 'test host' });
  const admin = await generateAdminKey({ name: adminName });
  const paths = {
    hostSecret: join(dir, 'host-key.asc'),
    hostPublic: join(dir, 'host-key.pub.asc'),
    adminSecret: join(dir, `admin-${adminName}.asc`),
    adminPublic: join(dir, `admin-${adminName}.pub.asc`),
  };
  await writeFile(paths.hostSecret, host.privateKey, { mode: 0o600 });
  await writeFile(paths.hostPublic, host.publicKey, { mode: 0o644 });
  await writeFile(paths.adminSecret, admin.privateKey, { mode: 0o600 });
  await writeFile(paths.adminPublic, admin.publicKey, { mode: 0o644 });
  return { dir, ...paths, hostFingerprint: host.fingerprint, adminFingerprint: admin.fingerprint };
}
