/**
 * Test domains built from the templates in fixtures/domains/. Each domain gets
 * its own temporary directory with freshly made disks (see fixtures/disks.ts),
 * is defined in qemu:///system and, unless asked otherwise, started.
 *
 * Names must start with `hvb-test-`: other people share this libvirtd, and the
 * prefix is what keeps a cleanup from ever touching their domains.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { createFixtureDisk, fixtureDisks, hasPattern, writePattern, type DiskFormat, type FixtureKind, type Pattern } from '../../fixtures/disks.js';

export { hasPattern, writePattern, type DiskFormat, type FixtureKind, type Pattern };

const execFileAsync = promisify(execFile);

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const templateDir = join(root, 'fixtures', 'domains');

export const TEST_DOMAIN_PREFIX = 'hvb-test-';
export const TEST_URI = 'qemu:///system';

const OVMF_VARS_TEMPLATE = '/usr/share/OVMF/OVMF_VARS.fd';

export interface TestDisk {
  target: string;
  path: string;
  format: DiskFormat;
}

export interface TestDomain {
  name: string;
  dir: string;
  disks: TestDisk[];
  /** The XML the domain was defined from, with placeholders filled in. */
  xml: string;
  /** NVRAM file of a UEFI domain; undefined for the other kinds. */
  nvramPath: string | undefined;
  /** Stops the domain if it runs and undefines it with its NVRAM and checkpoint metadata. */
  destroyAndUndefine(): Promise<void>;
  /** Runs destroyAndUndefine, then removes the domain's files. */
  cleanup(): Promise<void>;
}

export interface CreateTestDomainOptions {
  name: string;
  kind: FixtureKind;
  /** Directory for disks and logs. Default: a new directory under the system temp dir, removed by cleanup(). */
  dir?: string;
  /** Start the domain after defining it. Default: true. */
  start?: boolean;
}

export interface KnownDisk {
  target: string;
  format: DiskFormat;
  sizeBytes: number;
  patterns: Pattern[];
}

/** Describes, per disk of a fixture kind, which byte was written where. */
export function knownPatterns(kind: FixtureKind): KnownDisk[] {
  return fixtureDisks(kind).map(({ target, format, sizeBytes, patterns }) => ({ target, format, sizeBytes, patterns }));
}

/** Runs virsh against qemu:///system with English messages. Returns stdout. */
export async function virsh(...args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync('virsh', ['-c', TEST_URI, ...args], { env: { ...process.env, LC_ALL: 'C' } });
    return stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim() ?? '';
    throw new Error(`virsh ${args.join(' ')} failed: ${stderr || (error as Error).message}`, { cause: error });
  }
}

/** Throws unless the name carries the test prefix, so cleanup can only touch test domains. */
export function assertTestDomainName(name: string): void {
  if (!name.startsWith(TEST_DOMAIN_PREFIX) || !/^[A-Za-z0-9_.-]+$/.test(name)) {
    throw new Error(`test domain name '${name}' is invalid: it must start with '${TEST_DOMAIN_PREFIX}' and contain only letters, digits, '.', '_' and '-'`);
  }
}

/** Stops and undefines a test domain. A domain that is not running or not defined is not an error. */
export async function removeTestDomain(name: string): Promise<void> {
  assertTestDomainName(name);

  try {
    await virsh('destroy', name);
  } catch (error) {
    const message = (error as Error).message;
    if (!message.includes('domain is not running') && !message.includes('failed to get domain')) throw error;
  }

  try {
    await virsh('undefine', name, '--nvram', '--checkpoints-metadata');
  } catch (error) {
    if (!(error as Error).message.includes('failed to get domain')) throw error;
  }
}

/** Fills the @NAME@ and @DIR@ placeholders of a template in fixtures/domains/. */
export async function renderDomainTemplate(kind: FixtureKind, name: string, dir: string): Promise<string> {
  const template = await readFile(join(templateDir, `${kind}.xml`), 'utf8');
  return template.replaceAll('@NAME@', name).replaceAll('@DIR@', dir);
}

/**
 * Creates the disks of a fixture kind, defines the domain and starts it.
 * A domain left over with the same name from an earlier run is removed first.
 */
export async function createTestDomain(options: CreateTestDomainOptions): Promise<TestDomain> {
  assertTestDomainName(options.name);

  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), `${options.name}-`)));
  await mkdir(dir, { recursive: true });

  // libvirt relabels the disk files for QEMU (user libvirt-qemu) but not their
  // directory, so QEMU needs search permission on it.
  await chmod(dir, 0o711);

  const disks: TestDisk[] = [];
  for (const spec of fixtureDisks(options.kind)) {
    const path = await createFixtureDisk(dir, spec);
    disks.push({ target: spec.target, path, format: spec.format });
  }

  let nvramPath: string | undefined;
  if (options.kind === 'uefi') {
    nvramPath = join(dir, 'nvram.fd');
    await copyFile(OVMF_VARS_TEMPLATE, nvramPath);
  }

  const xml = await renderDomainTemplate(options.kind, options.name, dir);
  const xmlPath = join(dir, 'domain.xml');
  await writeFile(xmlPath, xml, { mode: 0o600 });

  await removeTestDomain(options.name);
  await virsh('define', xmlPath);
  if (options.start ?? true) await virsh('start', options.name);

  const destroyAndUndefine = () => removeTestDomain(options.name);

  const cleanup = async () => {
    await destroyAndUndefine();
    if (ownsDir) {
      await rm(dir, { recursive: true, force: true });
      return;
    }
    for (const disk of disks) await rm(disk.path, { force: true });
    for (const file of ['nvram.fd', 'serial.log', 'domain.xml']) await rm(join(dir, file), { force: true });
  };

  return { name: options.name, dir, disks, xml, nvramPath, destroyAndUndefine, cleanup };
}
