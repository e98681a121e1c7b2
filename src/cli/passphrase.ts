import { createReadStream } from 'node:fs';

import { UsageError } from '../errors.js';

/**
 * Reads a passphrase from an open file descriptor, up to the first newline.
 * Passphrases never come from the command line, where every user can read
 * them in the process list.
 */
export async function readPassphrase(fdText: string): Promise<string> {
  const fd = Number(fdText);
  if (!Number.isInteger(fd) || fd < 0) {
    throw new UsageError(`invalid file descriptor "${fdText}": expected a non-negative integer such as 3`);
  }

  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of createReadStream('', { fd, autoClose: false })) {
    chunks.push(chunk as Buffer);
    total += (chunk as Buffer).length;
    if (total > 4096) throw new UsageError(`passphrase on file descriptor ${fd} is longer than 4096 bytes`);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const newline = text.indexOf('\n');
  return newline === -1 ? text : text.slice(0, newline);
}
