/**
 * The optional excludedDisks key of manifest version 1. Manifests written
 * before it existed still decode, and a decoded list is checked for targets
 * that clash with the stored disks.
 */
import { describe, expect, it } from 'vitest';

import { VerificationError } from '../../src/errors.js';
import { decodeManifest, encodeManifest, type Manifest } from '../../src/manifest/schema.js';
import { validManifest } from '../support/manifest.js';

/** Encodes a manifest, changed by `edit`, the way a backup writes it. */
function encode(edit: (manifest: Record<string, unknown>) => void): Buffer {
  const manifest = validManifest() as unknown as Record<string, unknown>;
  edit(manifest);
  return encodeManifest(manifest as unknown as Manifest);
}

function decodeError(bytes: Buffer): VerificationError {
  try {
    decodeManifest(bytes, 'test/manifest.json');
  } catch (error) {
    expect(error).toBeInstanceOf(VerificationError);
    return error as VerificationError;
  }
  throw new Error('the manifest was accepted');
}

describe('manifest excludedDisks', () => {
  it('manifest without the key decodes', () => {
    const bytes = encodeManifest(validManifest());
    expect(bytes.toString('utf8')).not.toContain('excludedDisks');

    const manifest = decodeManifest(bytes, 'test/manifest.json');
    expect(manifest.excludedDisks).toBeUndefined();
    expect(manifest.disks.map((disk) => disk.target)).toEqual(['vda']);
  });

  it('excluded disk decodes', () => {
    const excluded = [{ target: 'vdb', format: 'qcow2', sourcePath: '/var/lib/libvirt/images/web-swap.qcow2' }];
    const manifest = decodeManifest(encode((raw) => (raw.excludedDisks = excluded)), 'test/manifest.json');
    expect(manifest.excludedDisks).toEqual(excluded);
  });

  it('excluded disk of another format decodes', () => {
    const excluded = [{ target: 'sdb', format: 'vmdk', sourcePath: '/srv/import.vmdk' }];
    const manifest = decodeManifest(encode((raw) => (raw.excludedDisks = excluded)), 'test/manifest.json');
    expect(manifest.excludedDisks).toEqual(excluded);
  });

  it('invalid excluded target rejected', () => {
    const error = decodeError(encode((raw) => (raw.excludedDisks = [{ target: '../vdb', format: 'raw', sourcePath: '/x' }])));
    expect(error.check).toBe('manifest-schema');
    expect(error.message).toContain('excludedDisks.0.target');
  });

  it('unknown key in excluded disk rejected', () => {
    const error = decodeError(encode((raw) => (raw.excludedDisks = [{ target: 'vdb', format: 'raw', sourcePath: '/x', entry: 'disks/vdb.img' }])));
    expect(error.check).toBe('manifest-schema');
    expect(error.message).toContain('excludedDisks.0');
  });

  it('target both stored and excluded rejected', () => {
    const error = decodeError(encode((raw) => (raw.excludedDisks = [{ target: 'vda', format: 'qcow2', sourcePath: '/x' }])));
    expect(error.check).toBe('manifest-schema');
    expect(error.message).toContain('disk target vda appears more than once');
  });

  it('target excluded twice rejected', () => {
    const twice = [
      { target: 'vdb', format: 'raw', sourcePath: '/x' },
      { target: 'vdb', format: 'raw', sourcePath: '/y' },
    ];
    const error = decodeError(encode((raw) => (raw.excludedDisks = twice)));
    expect(error.message).toContain('disk target vdb appears more than once');
  });
});
