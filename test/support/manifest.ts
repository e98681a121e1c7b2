/** A valid manifest for parser tests: a full backup of one qcow2 disk in three segments. */
import type { Manifest } from '../../src/manifest/schema.js';

const MiB = 1024 * 1024;

export function validManifest(): Manifest {
  const fingerprint = 'A1B2C3D4E5F60718293A4B5C6D7E8F9012345678';
  const segments = [0, 1, 2].map((index) => ({
    name: `${String(index).padStart(6, '0')}.pgp`,
    size: 1_050_000 + index,
    sha256: `${index}`.repeat(64),
    plainSize: index < 2 ? MiB : 4096,
  }));
  return {
    format: 'hvbackup-manifest',
    version: 1,
    repositoryId: '3f1c2a9e-8b7d-4c6e-9f01-23456789abcd',
    backupId: '20240601T020000Z-a1b2c3',
    host: 'host-a',
    domain: { name: 'web', uuid: '6c1d9a7e-0f4b-4e3a-8d2c-5b6a7f8e9d01' },
    type: 'full',
    parent: null,
    checkpoint: 'hvbackup-20240601T020000Z-a1b2c3',
    chain: { full: '20240601T020000Z-a1b2c3', length: 0 },
    startedAt: '2024-06-01T02:00:00.000Z',
    snapshotAt: '2024-06-01T02:00:01.000Z',
    finishedAt: '2024-06-01T02:00:09.000Z',
    tool: { name: 'hvbackup', version: '0.1.0' },
    disks: [{ target: 'vda', format: 'qcow2', sourcePath: '/var/lib/libvirt/images/web.qcow2', virtualSize: 64 * MiB, storedBytes: 1_622_016, extentCount: 3, entry: 'disks/vda.img' }],
    nvram: null,
    archiveBytes: 2 * MiB + 4096,
    segmentSize: MiB,
    segments,
    encryption: { recipients: [fingerprint], seipdVersion: 1 },
    signer: fingerprint,
  };
}
