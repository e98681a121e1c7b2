import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { Writable } from 'node:stream';

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

/**
 * Asks for a passphrase on the terminal without echoing it. Without a
 * terminal the prompt cannot be answered, so the caller must use --passphrase-fd.
 */
export async function promptPassphrase(keyDescription: string): Promise<string> {
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new UsageError(`${keyDescription} is protected by a passphrase, and there is no terminal to ask for it on`, {
      hint: 'pass --passphrase-fd N and write the passphrase to that file descriptor, for example --passphrase-fd 3 3<passphrase-file',
    });
  }

  // The prompt goes to stderr; everything typed after it is swallowed, so the passphrase never appears.
  let muted = false;
  const output = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (!muted) process.stderr.write(chunk);
      callback();
    },
  });
  const reader = createInterface({ input: process.stdin, output, terminal: true });
  try {
    const answer = reader.question(`Passphrase for ${keyDescription}: `);
    muted = true;
    return await answer;
  } finally {
    reader.close();
    process.stderr.write('\n');
  }
}
