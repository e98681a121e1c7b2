#!/usr/bin/env node
/**
 * Compares hvbackup with the tools people use for VM backups today, on one
 * test domain, in one run, alternating the contenders round by round so that
 * load from other work on the machine spreads over all of them.
 *
 *   node bench/run.mjs [--virtual 4G] [--allocated 2G] [--runs 3] [--only NAME,...] [--write-docs]
 *   node bench/run.mjs --memory [--memory-sizes 1G,16G] [--write-docs]
 *   any of them with --hvbackup-config '{"segmentSize":"4MiB"}' (extra hvbackup configuration keys)
 *   HVBACKUP_BENCH_NODE_FLAGS='--cpu-prof --cpu-prof-dir=DIR' node bench/run.mjs ... (Node.js flags for hvbackup only)
 *
 * Needs root, `npm run build` first (it runs bin/hvbackup.js as a user
 * would), and the peers from bench/install-peers.sh. It starts libvirtd and
 * its own RGW through test/services/, and removes every domain, image,
 * repository and bucket it made. One run per host at a time: a second one
 * exits at once, because all runs use the same domain names
 * (bench/lib/lock.mjs). Results go to stdout; --write-docs also
 * rewrites docs/benchmarks.md, keeping the hand-written bench/notes.md.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { createContenders } from './lib/contenders.mjs';
import { DOMAIN, dirtyDisk, prepareDomain, removeDomain } from './lib/domain.mjs';
import { describeMachine } from './lib/machine.mjs';
import { lockBenchmark } from './lib/lock.mjs';
import { measureMemory } from './lib/memory.mjs';
import { RESULT_HEADER, evaluateTargets, markdownTable, resultRows, summarize, textTable } from './lib/report.mjs';
import { createKeys, readJson, writeConfig } from './lib/setup.mjs';
import { bash, directoryBytes, quote, timed } from './lib/shell.mjs';
import { startServices } from './lib/services.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'bin', 'hvbackup.js');

function parseSize(text, option) {
  const match = /^(\d+(?:\.\d+)?)([KMGT]?)i?B?$/i.exec(text);
  if (!match) throw new Error(`invalid ${option} "${text}": expected a size such as 512M, 2G or 2GiB`);
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[match[2].toUpperCase()];
  return Math.round(Number(match[1]) * unit);
}

const { values: options } = parseArgs({
  options: {
    virtual: { type: 'string', default: '4G' },
    allocated: { type: 'string', default: '2G' },
    runs: { type: 'string', default: '3' },
    only: { type: 'string' },
    memory: { type: 'boolean', default: false },
    'memory-sizes': { type: 'string', default: '1G,16G' },
    'hvbackup-config': { type: 'string', default: '{}' },
    'write-docs': { type: 'boolean', default: false },
  },
});

const virtualBytes = parseSize(options.virtual, '--virtual');
const allocatedBytes = parseSize(options.allocated, '--allocated');
const runs = Number(options.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`invalid --runs "${options.runs}": expected a whole number of at least 1`);
if (allocatedBytes > virtualBytes) throw new Error(`--allocated ${options.allocated} is larger than --virtual ${options.virtual}`);

// Extra keys for every hvbackup configuration, e.g. '{"segmentSize":"4MiB"}', to try settings without editing code.
const hvbackupExtra = JSON.parse(options['hvbackup-config']);

const command = `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim();
const unlock = await lockBenchmark().catch((error) => {
  console.error(`bench/run.mjs: ${error.message}`);
  process.exit(1);
});
const work = await mkdtemp('/var/tmp/hvb-bench-');
// QEMU (user libvirt-qemu) must reach the disk and the NBD sockets below this directory.
await chmod(work, 0o711);
const services = await startServices(root);
const log = (message) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${message}`);

let cleaned = false;
async function cleanUp() {
  if (cleaned) return;
  cleaned = true;
  await removeDomain(DOMAIN).catch((error) => console.error(`removing ${DOMAIN} failed: ${error.message}`));
  await rm(work, { recursive: true, force: true });
  await services.stop();
  await unlock();
}
process.on('SIGINT', () => cleanUp().finally(() => process.exit(130)));

/** Runs every selected contender `runs` times, in rounds of A B C ..., and returns their samples and failures. */
async function compare(contenders, context) {
  const samples = Object.fromEntries(contenders.map((contender) => [contender.name, []]));
  const failures = {};
  for (let round = 1; round <= runs; round += 1) {
    for (const contender of contenders) {
      // After SIGINT, cleanUp removes the work directory, so nothing may start any more.
      if (cleaned) throw new Error('interrupted by SIGINT');
      if (failures[contender.name]) continue;
      try {
        const sample = await contender.measure(round);
        samples[contender.name].push(sample);
        log(`round ${round} ${contender.name}: ${sample.wallSeconds.toFixed(2)} s, ${(allocatedBytes / 1e6 / sample.wallSeconds).toFixed(1)} MB/s, CPU ${sample.cpuSeconds.toFixed(1)} s, RSS ${(sample.peakRssBytes / 1048576).toFixed(0)} MiB`);
      } catch (error) {
        failures[contender.name] = error.message;
        log(`round ${round} ${contender.name} failed, skipping it from now on: ${error.message}`);
      }
    }
  }
  return { samples, failures };
}

/** Takes a full backup, dirties 1% then 10% of the virtual size, and takes an incremental after each. */
async function measureIncremental(context) {
  const repo = join(work, 'repo-incremental');
  await mkdir(repo, { recursive: true });
  const config = await writeConfig(work, 'incremental', context.keys, { type: 'local', path: repo }, hvbackupExtra);
  const timeFile = join(work, 'time.txt');
  const backup = async (mode) => {
    const before = await directoryBytes(repo).catch(() => 0);
    const output = join(work, 'incremental.json');
    const result = await timed(`${quote(process.execPath)} ${quote(cli)} --config ${quote(config)} --log-format json backup --mode ${mode} --json ${DOMAIN} > ${quote(output)}`, { timeFile });
    const [summary] = await readJson(output);
    if (summary.type !== mode) throw new Error(`hvbackup took a ${summary.type} backup where ${mode} was requested`);
    return { ...result, storedBytes: (await directoryBytes(repo)) - before };
  };

  const rows = [];
  rows.full = await backup('full');
  log(`incremental: full ${rows.full.wallSeconds} s, ${rows.full.storedBytes} bytes`);
  for (const [percent, seed] of [[1, 2], [10, 3]]) {
    await dirtyDisk(context.image, { virtualBytes, percent, seed });
    const sample = await backup('incremental');
    rows.push({ percent, ...sample });
    log(`incremental: ${percent}% dirty ${sample.wallSeconds} s, ${sample.storedBytes} bytes`);
  }
  return rows;
}

function incrementalTable(rows) {
  const header = ['backup', 'wall s', 'CPU s', 'peak RSS MiB', 'stored MiB', 'time vs full', 'bytes vs full'];
  const body = [
    ['full', rows.full.wallSeconds.toFixed(2), rows.full.cpuSeconds.toFixed(1), (rows.full.peakRssBytes / 1048576).toFixed(0), (rows.full.storedBytes / 1048576).toFixed(1), '100%', '100%'],
    ...rows.map((row) => [
      `incremental, ${row.percent}% of the virtual size rewritten`,
      row.wallSeconds.toFixed(2),
      row.cpuSeconds.toFixed(1),
      (row.peakRssBytes / 1048576).toFixed(0),
      (row.storedBytes / 1048576).toFixed(1),
      `${((100 * row.wallSeconds) / rows.full.wallSeconds).toFixed(1)}%`,
      `${((100 * row.storedBytes) / rows.full.storedBytes).toFixed(2)}%`,
    ]),
  ];
  return { header, body };
}

function memoryTable(rows) {
  return {
    header: ['allocated', 'virtual', 'backup wall s', 'backup peak RSS MiB', 'restore wall s', 'restore peak RSS MiB'],
    body: rows.map((row) => [row.label, row.virtualLabel, row.backupWall.toFixed(1), row.backupRssMiB.toFixed(0), row.restoreWall.toFixed(1), row.restoreRssMiB.toFixed(0)]),
  };
}

async function writeDocs({ machine, date, summaries, contenders, failures, incremental, memory, targets, domainAllocated }) {
  const notes = await readFile(join(root, 'bench', 'notes.md'), 'utf8').catch(() => '');
  const previous = await readFile(join(root, 'docs', 'benchmarks.md'), 'utf8').catch(() => '');
  const sections = [];
  sections.push('# Benchmarks', '');
  sections.push('Written by `node bench/run.mjs --write-docs` (figures) from the hand-written `bench/notes.md` (analysis). Throughput is allocated guest bytes (10^6 bytes per MB) divided by wall time, for every contender alike.', '');
  if (summaries) {
    sections.push('## Command and machine', '');
    sections.push('```sh', command, '```', '');
    sections.push(`- date: ${date}`);
    sections.push(`- test disk: qcow2, ${options.virtual} virtual, ${(domainAllocated / 1048576).toFixed(0)} MiB allocated in random runs of about 1 MiB (nbdkit sparse-random, random-content=true), domain type qemu, 64 MiB RAM, no OS`);
    sections.push(`- runs: ${runs} per contender, alternating`);
    sections.push(`- machine: ${machine.cores} cores, ${machine.cpu}, ${machine.memoryGiB} GiB RAM, kernel ${machine.kernel}, Node.js ${machine.node}`);
    for (const [name, version] of Object.entries(machine.versions)) sections.push(`- ${name}: ${version}`);
    sections.push('');
    sections.push('## Targets', '');
    sections.push(markdownTable(['target', 'measured', 'verdict'], targets.map((row) => [row.target, row.measured, `**${row.verdict}**`])), '');
    sections.push('## Full backups and restore', '');
    sections.push(markdownTable(RESULT_HEADER, resultRows(contenders, summaries)), '');
    sections.push('CPU % is user plus system time of every process the command waited for, over wall time (200% is both cores); it leaves out radosgw and QEMU. Peak RSS is that of the largest single process. Stored bytes for the gpg pipelines include the zero-filled holes, because `nbdcopy ... -` writes a stream of the whole virtual size.', '');
    for (const contender of contenders) sections.push(`- \`${contender.name}\`: ${contender.description}`);
    sections.push('');
    if (Object.keys(failures).length > 0) {
      sections.push('Contenders that failed:', '');
      for (const [name, message] of Object.entries(failures)) sections.push(`- \`${name}\`: ${message.split('\n')[0]}`);
      sections.push('');
    }
    if (incremental) {
      const table = incrementalTable(incremental);
      sections.push('## Incremental backups', '', 'One pass: a full backup, then rewrite 1% and then 10% of the virtual size with random data at scattered offsets while the domain is shut off, and an incremental backup after each.', '');
      sections.push(markdownTable(table.header, table.body), '');
    }
  } else {
    // A --memory run keeps the comparison figures of the last full run.
    const comparison = previous.split('\n## Memory')[0].split('\n## Analysis')[0].trim();
    sections.length = 0;
    sections.push(comparison, '');
  }
  if (memory) {
    const table = memoryTable(memory);
    sections.push('## Memory', '', `\`${command}\` on ${date}: peak RSS of hvbackup backup (local repository) and restore per allocated size.`, '');
    sections.push(markdownTable(table.header, table.body), '');
  } else {
    const previousMemory = previous.includes('\n## Memory') ? previous.split('\n## Memory')[1].split('\n## Analysis')[0] : '';
    if (previousMemory) sections.push(`## Memory${previousMemory.trimEnd()}`, '');
  }
  if (notes) sections.push(notes.trim(), '');
  await writeFile(join(root, 'docs', 'benchmarks.md'), sections.join('\n'));
}

try {
  const keys = await createKeys(cli, work);
  const configs = {
    local: await writeConfig(work, 'local', keys, { type: 'local', path: join(work, 'repo-local') }, hvbackupExtra),
    s3: (bucket) => writeConfig(work, `s3-${bucket}`, keys, { type: 's3', bucket, endpoint: services.s3.endpoint, region: services.s3.region, forcePathStyle: true }, hvbackupExtra),
  };
  const machine = await describeMachine();
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC';

  if (options.memory) {
    const sizes = options['memory-sizes'].split(',').map((label) => ({ label, bytes: parseSize(label, '--memory-sizes') }));
    const memory = await measureMemory({ cli, work, keys, sizes, log, extra: hvbackupExtra });
    const table = memoryTable(memory);
    console.log(textTable(table.header, table.body));
    const targets = evaluateTargets({}, memory, []);
    console.log(`\n${targets.map((row) => `${row.verdict.padEnd(12)} ${row.target}: ${row.measured}`).join('\n')}`);
    if (options['write-docs']) await writeDocs({ machine, date, memory });
  } else {
    log(`preparing ${DOMAIN}: ${options.virtual} virtual, ${options.allocated} allocated`);
    const domain = await prepareDomain(join(work, 'domain'), { virtualBytes, allocatedBytes });
    const context = { cli, work, keys, s3: services.s3, configs, runs, allocatedBytes: domain.allocatedBytes, image: domain.image };

    const all = createContenders(context);
    const only = options.only?.split(',').map((name) => name.trim());
    const unknown = only?.filter((name) => name !== 'incremental' && !all.some((contender) => contender.name === name)) ?? [];
    if (unknown.length > 0) throw new Error(`unknown contender in --only: ${unknown.join(', ')}; choose from ${all.map((c) => c.name).join(', ')}, incremental`);
    const contenders = only ? all.filter((contender) => only.includes(contender.name)) : all;

    const { samples, failures } = await compare(contenders, context);
    // The restore's data path alone, to separate it from `virsh define`, which libvirt may make slow.
    const staging = (samples['hvbackup-restore'] ?? []).filter((sample) => sample.stagingSeconds !== undefined).map((sample) => ({ ...sample, wallSeconds: sample.stagingSeconds }));
    if (staging.length > 0) {
      samples['hvbackup-restore-staging'] = staging;
      contenders.splice(contenders.findIndex((contender) => contender.name === 'hvbackup-restore') + 1, 0, {
        name: 'hvbackup-restore-staging',
        description: 'the same restores, timed from "restore requested" to "backup applied to staging" in hvbackup\'s log: everything but promotion and `virsh define` (CPU % and RSS are those of the whole restore)',
      });
    }
    const summaries = Object.fromEntries(Object.entries(samples).filter(([, list]) => list.length > 0).map(([name, list]) => [name, summarize(list, domain.allocatedBytes)]));
    let incremental;
    if (!only || only.includes('incremental')) {
      // A failure here must not throw away the comparison figures measured above.
      incremental = await measureIncremental(context).catch((error) => {
        failures.incremental = error.message;
        log(`incremental failed: ${error.message}`);
        return undefined;
      });
    }
    const targets = evaluateTargets(summaries, [], incremental ?? []);

    console.log(textTable(RESULT_HEADER, resultRows(contenders, summaries)));
    if (incremental) {
      const table = incrementalTable(incremental);
      console.log(`\n${textTable(table.header, table.body)}`);
    }
    for (const [name, message] of Object.entries(failures)) console.log(`\n${name} failed: ${message}`);
    console.log(`\n${targets.map((row) => `${row.verdict.padEnd(12)} ${row.target}: ${row.measured}`).join('\n')}`);
    if (options['write-docs']) await writeDocs({ machine, date, summaries, contenders, failures, incremental, targets, domainAllocated: domain.allocatedBytes });
  }
} finally {
  await cleanUp();
}
