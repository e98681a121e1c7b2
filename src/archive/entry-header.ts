/**
 * Reads the headers of one archive member: an optional PAX extended header
 * ('x') and the ustar header that follows it. Resolves the effective name,
 * size and GNU sparse 1.0 records, and rejects everything that is not a
 * regular file.
 */
import { ArchiveError } from '../errors.js';
import { ByteSource, truncated } from './byte-source.js';
import { decodeUstarHeader, isZeroBlock } from './header.js';
import { findNameFault } from './names.js';
import { parsePaxNumber, parsePaxRecords } from './pax.js';
import { BLOCK_SIZE, padToBlock } from './sparse-map.js';

/** Largest PAX extended header accepted, in bytes. Our headers take a few hundred bytes; names are capped at 4096. */
export const MAX_PAX_HEADER_BYTES = 64 * 1024;

export interface MemberHeader {
  name: string;
  /** Size of the member data in bytes (for sparse members: map block plus stored bytes). */
  size: number;
  /** Virtual file size, present only for GNU sparse 1.0 members. */
  realSize: number | undefined;
  /** Stream offset of the first header block, for messages. */
  position: number;
}

const REJECTED_TYPES: Record<string, string> = {
  '1': 'a hard link',
  '2': 'a symbolic link',
  '3': 'a character device',
  '4': 'a block device',
  '5': 'a directory',
  '6': 'a FIFO',
  '7': 'a contiguous file',
  g: 'a global PAX header',
  K: 'a GNU long link name',
  L: 'a GNU long name',
  S: 'an old GNU sparse file',
};

/** GNU sparse keywords of formats 0.0 and 0.1, which this reader does not accept. */
const OLD_SPARSE_KEYWORDS = ['GNU.sparse.size', 'GNU.sparse.numblocks', 'GNU.sparse.offset', 'GNU.sparse.numbytes', 'GNU.sparse.map'];

/** Reads the next member's headers, or returns undefined at the first block of the end-of-archive marker. */
export async function readMemberHeader(source: ByteSource): Promise<MemberHeader | undefined> {
  const position = source.position;
  let pax: Map<string, string> | undefined;

  for (;;) {
    const blockPosition = source.position;
    const block = await source.exact(BLOCK_SIZE, `the tar header at byte ${blockPosition}`);

    if (block === undefined) {
      if (pax !== undefined) throw truncated(`the member that starts at byte ${position}`);
      throw new ArchiveError(`tar stream ended at byte ${blockPosition} without the end-of-archive marker`, {
        hint: 'the archive is incomplete; check that every segment was downloaded and decrypted',
      });
    }
    if (isZeroBlock(block)) {
      if (pax !== undefined) throw new ArchiveError(`PAX extended header at byte ${position} is followed by the end-of-archive marker instead of a file header`);
      return undefined;
    }

    const header = decodeUstarHeader(block, blockPosition);
    const shownName = JSON.stringify(header.name);

    if (header.typeflag === 'x') {
      if (pax !== undefined) throw new ArchiveError(`two PAX extended headers in a row at byte ${blockPosition}`);
      if (header.size > MAX_PAX_HEADER_BYTES) {
        throw new ArchiveError(`PAX extended header at byte ${blockPosition} is ${header.size} bytes, more than the limit of ${MAX_PAX_HEADER_BYTES}`);
      }

      const data = header.size === 0 ? Buffer.alloc(0) : await source.exact(header.size, `the PAX extended header at byte ${blockPosition}`);
      if (data === undefined) throw truncated(`the PAX extended header at byte ${blockPosition}`);
      await source.skip(padToBlock(header.size) - header.size, `the PAX extended header at byte ${blockPosition}`);

      pax = parsePaxRecords(data, `at byte ${blockPosition}`);
      continue;
    }

    if (header.typeflag !== '0' && header.typeflag !== '\0') {
      const kind = REJECTED_TYPES[header.typeflag] ?? `of unknown type ${JSON.stringify(header.typeflag)}`;
      throw new ArchiveError(`archive member ${shownName} at byte ${blockPosition} is ${kind}; only regular files are accepted`);
    }

    return resolveMember(header.name, header.size, pax ?? new Map(), position);
  }
}

/** Applies the PAX records to the ustar fields and validates the result. */
function resolveMember(ustarName: string, ustarSize: number, pax: Map<string, string>, position: number): MemberHeader {
  const sparse = [...pax.keys()].some((keyword) => keyword.startsWith('GNU.sparse.'));
  const name = sparse ? (pax.get('GNU.sparse.name') ?? '') : (pax.get('path') ?? ustarName);
  const shownName = JSON.stringify(name);

  const fault = findNameFault(name);
  if (fault !== undefined) {
    throw new ArchiveError(`archive member at byte ${position} has the invalid name ${shownName}: ${fault}`);
  }

  const paxSize = pax.get('size');
  const size = paxSize === undefined ? ustarSize : parsePaxNumber(paxSize, 'size', name);
  if (!sparse) return { name, size, realSize: undefined, position };

  const oldKeyword = OLD_SPARSE_KEYWORDS.find((keyword) => pax.has(keyword));
  const major = pax.get('GNU.sparse.major');
  const minor = pax.get('GNU.sparse.minor');
  if (oldKeyword !== undefined || major !== '1' || minor !== '0') {
    throw new ArchiveError(`archive member ${shownName} uses GNU sparse format ${major ?? '0'}.${minor ?? 'x'}; only format 1.0 is accepted`, {
      hint: 'create the archive with tar --format=pax --sparse-version=1.0',
    });
  }

  const realSizeText = pax.get('GNU.sparse.realsize');
  if (realSizeText === undefined) throw new ArchiveError(`sparse archive member ${shownName} has no GNU.sparse.realsize record`);
  const realSize = parsePaxNumber(realSizeText, 'GNU.sparse.realsize', name);

  return { name, size, realSize, position };
}
