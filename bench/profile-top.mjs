#!/usr/bin/env node
/**
 * Prints the functions with the most self time in V8 CPU profiles, as
 * written by `node --cpu-prof --cpu-prof-dir DIR bin/hvbackup.js ...` (one
 * .cpuprofile per thread, worker threads included).
 *
 * Usage: node bench/profile-top.mjs DIR [COUNT]   (COUNT defaults to 15)
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

const [dir, countText = '15'] = process.argv.slice(2);
if (!dir) {
  console.error('usage: node bench/profile-top.mjs DIR [COUNT]');
  process.exit(2);
}

for (const file of (await readdir(dir)).filter((name) => name.endsWith('.cpuprofile')).sort()) {
  const profile = JSON.parse(await readFile(join(dir, file), 'utf8'));
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));

  // Each sample belongs to one node; timeDeltas[i] is the time since the previous sample, in microseconds.
  const selfMicros = new Map();
  profile.samples.forEach((id, index) => selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0)));

  const byFunction = new Map();
  let total = 0;
  for (const [id, micros] of selfMicros) {
    const frame = nodes.get(id).callFrame;
    const where = frame.url ? `${basename(frame.url)}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'} ${where}`.trim();
    byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
    total += micros;
  }

  console.log(`\n${file}: ${(total / 1e6).toFixed(2)} s sampled`);
  const top = [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(countText));
  for (const [name, micros] of top) console.log(`${(micros / 1e6).toFixed(2).padStart(8)} s ${((100 * micros) / total).toFixed(1).padStart(5)}%  ${name}`);
}
