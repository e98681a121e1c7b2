/**
 * Runs commands for the benchmark: plain calls whose output we need, and
 * timed calls under GNU time, which reports wall time, user and system CPU
 * time, and the peak RSS of the largest process (not the sum of a pipeline).
 */
import { execFile, spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Runs a program and returns its stdout; the error names the command and carries its stderr. */
export async function run(program, args, options = {}) {
  try {
    const { stdout } = await execFileAsync(program, args, { maxBuffer: 64 * 1024 * 1024, ...options, env: { ...process.env, LC_ALL: 'C', ...options.env } });
    return stdout;
  } catch (error) {
    const stderr = String(error.stderr ?? '').trim();
    throw new Error(`${program} ${args.join(' ')} failed: ${stderr || error.message}`, { cause: error });
  }
}

/** Runs a bash script and returns its stdout. */
export function bash(script, options = {}) {
  return run('bash', ['-c', `set -euo pipefail\n${script}`], options);
}

/**
 * Runs a bash script under /usr/bin/time and returns { wallSeconds,
 * cpuSeconds, peakRssBytes }. The CPU time covers every process the script
 * waited for, including worker threads. It leaves out daemons such as
 * radosgw or QEMU that serve the script.
 */
export async function timed(script, { env = {}, timeFile, logFile } = {}) {
  await rm(timeFile, { force: true });
  const child = spawn('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, 'bash', '-c', `set -euo pipefail\n${script}`], {
    env: { ...process.env, LC_ALL: 'C', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  let output = '';
  const keep = (chunk) => {
    output += chunk.toString('utf8');
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const code = await new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });

  if (logFile) await import('node:fs/promises').then((fs) => fs.appendFile(logFile, `\n$ ${script}\n${output}`));
  if (code !== 0) {
    throw new Error(`timed command failed with exit code ${code}: ${script.split('\n')[0]}\n${output.trim().split('\n').slice(-15).join('\n')}`);
  }

  const lines = (await readFile(timeFile, 'utf8')).trim().split('\n');
  const [wall, user, system, rssKiB] = lines.at(-1).split(' ').map(Number);
  return { wallSeconds: wall, cpuSeconds: user + system, peakRssBytes: rssKiB * 1024, output };
}

/** Quotes a string for bash. */
export function quote(value) {
  return `'${String(value).replaceAll("'", `'\\''`)}'`;
}

/** Returns the apparent size in bytes of a file or directory tree. */
export async function directoryBytes(path) {
  const stdout = await run('du', ['-sb', path]);
  return Number(stdout.split('\t')[0]);
}

/**
 * Returns the shell command that runs hvbackup with `config` and JSON logs.
 * HVBACKUP_BENCH_NODE_FLAGS adds Node.js flags to hvbackup alone, such as
 * '--cpu-prof --cpu-prof-dir=DIR', which Node.js rejects in NODE_OPTIONS.
 */
export function hvbackupCommand(cli, config, args) {
  const nodeFlags = (process.env.HVBACKUP_BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean).map(quote).join(' ');
  return `${quote(process.execPath)} ${nodeFlags} ${quote(cli)} --config ${quote(config)} --log-format json ${args}`;
}
