import { createInterface } from 'node:readline/promises';

import { RefusedError } from '../errors.js';

/**
 * Prints what is about to change and asks for "yes" on the terminal. Without
 * a terminal there is nobody to ask, so the answer must come from --yes.
 */
export async function confirmOnTerminal(summary: string, assumeYes: boolean): Promise<boolean> {
  process.stderr.write(`${summary}\n`);
  if (assumeYes) return true;

  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new RefusedError('confirmation needed but there is no terminal to ask on', {
      hint: 'pass --yes to confirm in scripts',
    });
  }
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await prompt.question('Type "yes" to go on: ');
    return answer.trim().toLowerCase() === 'yes';
  } finally {
    prompt.close();
  }
}
