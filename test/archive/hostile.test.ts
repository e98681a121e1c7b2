/**
 * Hostile and damaged input for readArchive: every case must end in an
 * ArchiveError, within a time limit and without large allocations.
 */
import { describe, expect, it } from 'vitest';

import { readArchive } from '../../src/archive/reader.js';
import { ArchiveError } from '../../src/errors.js';
import { buildArchive, chunked, readAll, seededRandom, slices } from './support.js';

interface HeaderFields {
  name: string;
  size: number;
  typeflag?: string;
  linkname?: string;
  prefix?: string;
}

/** Builds a POSIX ustar header block with a correct checksum, written independently of the product code. */
function ustarHeader(fields: HeaderFields): Buffer {
  const block = Buffer.alloc(512);
  block.write(fields.name, 0, 100, 'utf8');
  block.write('0000644\0', 100, 'latin1');
  block.write('0000000\0', 108, 'latin1');
  block.write('0000000\0', 116, 'latin1');
  block.write(fields.size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  block.write('00000000000\0', 136, 'latin1');
  block.write(fields.typeflag ?? '0', 156, 'latin1');
  if (fields.linkname) block.write(fields.linkname, 157, 'utf8');
  block.write('ustar\u000000', 257, 'latin1');
  if (fields.prefix) block.write(fields.prefix, 345, 'utf8');
  fixChecksum(block);
  return block;
}

function fixChecksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
}

function padded(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

function paxRecord(keyword: string, value: string): string {
  const body = ` ${keyword}=${value}\n`;
  let length = body.length + String(body.length).length;
  if (String(length).length !== String(body.length).length) length = body.length + String(length).length;
  return `${length}${body}`;
}

function paxBlock(text: string): Buffer {
  const data = Buffer.from(text, 'utf8');
  return Buffer.concat([ustarHeader({ name: 'PaxHeader', size: data.length, typeflag: 'x' }), padded(data)]);
}

const END = Buffer.alloc(1024);

function regularFile(name: string, content = 'x'): Buffer {
  return Buffer.concat([ustarHeader({ name, size: content.length }), padded(Buffer.from(content))]);
}

/** Builds a GNU sparse 1.0 member from map text and data, sized as the map block plus data. */
function sparseMember(map: string, data: Buffer, options: { realSize?: string; size?: number; extra?: string } = {}): Buffer {
  const mapBlock = padded(Buffer.from(map, 'latin1'));
  const size = options.size ?? mapBlock.length + data.length;
  const records =
    paxRecord('GNU.sparse.major', '1') +
    paxRecord('GNU.sparse.minor', '0') +
    paxRecord('GNU.sparse.name', 'disks/vda.img') +
    paxRecord('GNU.sparse.realsize', options.realSize ?? '1048576') +
    (options.extra ?? '');
  return Buffer.concat([paxBlock(records), ustarHeader({ name: 'GNUSparseFile.0/vda.img', size }), padded(Buffer.concat([mapBlock, data]))]);
}

type Outcome = 'ok' | 'archive-error' | 'timeout' | Error;

/** Reads every member fully and classifies the outcome; never lets a case run past `timeoutMs`. */
async function consume(input: Buffer, chunkSizes: number[] = [512], timeoutMs = 2000): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const reading = readAll(readArchive(slices(input, chunkSizes), { maxFileBytes: 1024 * 1024, maxExtents: 1000 }))
    .then((): Outcome => 'ok')
    .catch((error: unknown): Outcome => (error instanceof ArchiveError ? 'archive-error' : (error as Error)));

  try {
    return await Promise.race([reading, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const hostileCases: Array<[string, Buffer, RegExp]> = [
  ['parent segment', Buffer.concat([regularFile('disks/../../etc/passwd'), END]), /contains a "\.\." segment/],
  ['absolute name', Buffer.concat([regularFile('/etc/passwd'), END]), /absolute path/],
  ['pax parent path', Buffer.concat([paxBlock(paxRecord('path', '../x')), regularFile('x'), END]), /contains a "\.\." segment/],
  ['pax path with NUL', Buffer.concat([paxBlock(paxRecord('path', 'a\0b')), regularFile('x'), END]), /NUL/],
  ['dot segment', Buffer.concat([regularFile('./hvbackup.json'), END]), /contains a "\." segment/],
  ['space in name', Buffer.concat([regularFile('disk one.img'), END]), /outside \[A-Za-z0-9\._\+-\]/],
  ['symbolic link', Buffer.concat([ustarHeader({ name: 'evil', size: 0, typeflag: '2', linkname: '/etc/passwd' }), END]), /symbolic link/],
  ['hard link', Buffer.concat([ustarHeader({ name: 'evil', size: 0, typeflag: '1', linkname: 'x' }), END]), /hard link/],
  ['character device', Buffer.concat([ustarHeader({ name: 'null', size: 0, typeflag: '3' }), END]), /character device/],
  ['FIFO', Buffer.concat([ustarHeader({ name: 'pipe', size: 0, typeflag: '6' }), END]), /FIFO/],
  ['directory', Buffer.concat([ustarHeader({ name: 'disks/', size: 0, typeflag: '5' }), END]), /directory/],
  ['global pax header', Buffer.concat([ustarHeader({ name: 'g', size: 0, typeflag: 'g' }), END]), /global PAX header/],
  ['bad checksum', Buffer.concat([Buffer.from(regularFile('a')).fill(0x31, 0, 1), END]), /checksum/],
  ['huge extent count', Buffer.concat([sparseMember('99999999\n', Buffer.alloc(0)), END]), /declares 99999999 extents, more than the limit/],
  ['negative offset', Buffer.concat([sparseMember('1\n-5\n10\n', Buffer.alloc(10)), END]), /not a decimal digit/],
  ['plus sign', Buffer.concat([sparseMember('1\n+5\n10\n', Buffer.alloc(10)), END]), /not a decimal digit/],
  ['leading zero', Buffer.concat([sparseMember('1\n05\n10\n', Buffer.alloc(10)), END]), /leading zero/],
  ['overflowing offset', Buffer.concat([sparseMember('1\n99999999999999999\n10\n', Buffer.alloc(10)), END]), /more than 16 digits/],
  ['number above 2^53', Buffer.concat([sparseMember('1\n9999999999999999\n10\n', Buffer.alloc(10)), END]), /larger than 2\^53-1/],
  ['extent past realSize', Buffer.concat([sparseMember('1\n1048570\n10\n', Buffer.alloc(10)), END]), /past realSize/],
  ['overlapping extents', Buffer.concat([sparseMember('2\n0\n1024\n512\n10\n', Buffer.alloc(1034)), END]), /starts before the previous extent/],
  ['unsorted extents', Buffer.concat([sparseMember('2\n4096\n512\n0\n512\n', Buffer.alloc(1024)), END]), /starts before the previous extent/],
  ['unaligned inner extent', Buffer.concat([sparseMember('2\n0\n100\n4096\n10\n', Buffer.alloc(110)), END]), /not a multiple of 512/],
  ['map sum below size', Buffer.concat([sparseMember('1\n0\n10\n', Buffer.alloc(20)), END]), /add up to 10 bytes but the member stores 20/],
  ['map sum above size', Buffer.concat([sparseMember('1\n0\n1000\n', Buffer.alloc(20)), END]), /add up to 1000 bytes/],
  ['map past member', Buffer.concat([sparseMember('1\n0\n10\n', Buffer.alloc(0), { size: 100 }), END]), /runs past the member size/],
  ['garbage after map', Buffer.concat([sparseMember('1\n0\n10\nxyz', Buffer.alloc(10)), END]), /not NUL padding|not a decimal digit/],
  ['missing realsize digits', Buffer.concat([sparseMember('0\n', Buffer.alloc(0), { realSize: '1e9' }), END]), /GNU\.sparse\.realsize/],
  ['old sparse format', Buffer.concat([sparseMember('0\n', Buffer.alloc(0), { extra: paxRecord('GNU.sparse.numblocks', '1') }), END]), /only format 1\.0/],
  ['pax length too long', Buffer.concat([paxBlock('99 path=x\n'), regularFile('x'), END]), /runs past the header end/],
  ['pax length too short', Buffer.concat([paxBlock('5 path=x\n'), regularFile('x'), END]), /does not end in a newline/],
  ['pax length with sign', Buffer.concat([paxBlock('+12 path=x\n'), regularFile('x'), END]), /not a plain decimal/],
  ['pax duplicate keyword', Buffer.concat([paxBlock(paxRecord('path', 'a') + paxRecord('path', 'b')), regularFile('x'), END]), /appears twice/],
  ['pax negative size', Buffer.concat([paxBlock(paxRecord('size', '-1')), regularFile('x'), END]), /invalid PAX record size/],
  ['pax exponent size', Buffer.concat([paxBlock(paxRecord('size', '1e3')), regularFile('x'), END]), /invalid PAX record size/],
  ['pax header at end', Buffer.concat([paxBlock(paxRecord('path', 'a')), END]), /followed by the end-of-archive marker/],
  ['duplicate member', Buffer.concat([regularFile('a'), regularFile('a'), END]), /appears twice/],
  ['missing end marker', regularFile('a'), /without the end-of-archive marker/],
  ['single zero block', Buffer.concat([regularFile('a'), Buffer.alloc(512)]), /ended inside the end-of-archive marker/],
  ['data after end marker', Buffer.concat([regularFile('a'), END, regularFile('b')]), /data after the end-of-archive marker/],
  ['truncated file data', Buffer.concat([ustarHeader({ name: 'a', size: 2000 }), Buffer.alloc(1000)]), /tar stream ended inside archive member a/],
  ['truncated header', Buffer.concat([regularFile('a'), Buffer.alloc(100, 1)]), /tar stream ended inside the tar header/],
  ['truncated sparse data', sparseMember('1\n0\n4096\n', Buffer.alloc(4096)).subarray(0, 3000), /tar stream ended inside archive member disks\/vda\.img/],
];

describe('readArchive hostile input', () => {
  it.each(hostileCases)('reader rejects %s', async (_label, input, message) => {
    const read = readAll(readArchive(slices(input, [512])));

    await expect(read).rejects.toThrow(ArchiveError);
    await expect(readAll(readArchive(slices(input, [100])))).rejects.toThrow(message);
  });

  it('reader accepts well-formed hand-built sparse', async () => {
    const input = Buffer.concat([sparseMember('2\n0\n512\n4096\n10\n', Buffer.alloc(522, 1)), END]);

    const { images } = await readAll(readArchive(slices(input, [512])));

    expect(images.get('disks/vda.img')!.subarray(4096, 4106).equals(Buffer.alloc(10, 1))).toBe(true);
  });

  it('reader mutations give ArchiveError only', async () => {
    const valid = await buildArchive(async (writer) => {
      await writer.addFile('hvbackup.json', Buffer.from('{"format":1}'));
      await writer.addSparseFile('disks/vda.img', {
        realSize: 1024 * 1024,
        extents: [{ offset: 0, length: 1024 }, { offset: 65536, length: 700 }],
        data: chunked([Buffer.alloc(1024, 1), Buffer.alloc(700, 2)], 333),
      });
      await writer.addFile('checksums.json', Buffer.from('{}'));
    });
    const headerBlocks: number[] = [];
    for (let offset = 0; offset < valid.length; offset += 512) {
      if (valid.toString('latin1', offset + 257, offset + 262) === 'ustar') headerBlocks.push(offset);
    }

    const random = seededRandom(20240601);
    const pick = (limit: number): number => Math.floor(random() * limit);
    const outcomes = new Map<string, number>();
    const heapBefore = process.memoryUsage().heapUsed;

    for (let round = 0; round < 2000; round += 1) {
      let mutated = Buffer.from(valid);
      const kind = pick(5);

      if (kind === 0) {
        for (let flips = 1 + pick(4); flips > 0; flips -= 1) mutated[pick(mutated.length)] = pick(256);
      } else if (kind === 1) {
        mutated = mutated.subarray(0, pick(mutated.length));
      } else if (kind === 2) {
        // Change a header or PAX byte to a digit, sign or newline, then repair the checksum so the change gets past it.
        const block = headerBlocks[pick(headerBlocks.length)]!;
        const target = block + pick(1024);
        mutated[target] = '0123456789-+ \n='.charCodeAt(pick(15));
        fixChecksum(mutated.subarray(block, block + 512));
      } else if (kind === 3) {
        const at = pick(mutated.length);
        mutated = Buffer.concat([mutated.subarray(0, at), Buffer.from([pick(256)]), mutated.subarray(at)]);
      } else {
        const block = headerBlocks[pick(headerBlocks.length)]!;
        mutated[block + 124 + pick(12)] = pick(256);
        mutated[block + 156] = pick(2) === 0 ? mutated[block + 156]! : '0123456xgLKS'.charCodeAt(pick(12));
        fixChecksum(mutated.subarray(block, block + 512));
      }

      const outcome = await consume(mutated, [1 + pick(2048)]);
      const label = outcome instanceof Error ? `${outcome.name}: ${outcome.message}` : outcome;
      outcomes.set(label, (outcomes.get(label) ?? 0) + 1);
    }

    const unexpected = [...outcomes.keys()].filter((label) => label !== 'ok' && label !== 'archive-error');
    expect(unexpected).toEqual([]);
    expect(outcomes.get('archive-error') ?? 0).toBeGreaterThan(1000);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(256 * 1024 * 1024);
  });
});
