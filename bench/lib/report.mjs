/**
 * Turns the samples into figures: per contender the median and the range
 * (min to max) of wall time, throughput, CPU and peak RSS; per target the
 * ratio of medians of contenders measured in the same rounds.
 */
const MB = 1e6;
const MIB = 1024 * 1024;

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Summarizes the samples of one contender. Throughput is allocated guest bytes per second of wall time. */
export function summarize(samples, allocatedBytes) {
  const walls = samples.map((sample) => sample.wallSeconds);
  const throughputs = walls.map((wall) => allocatedBytes / MB / wall);
  const cpuPercents = samples.map((sample) => (100 * sample.cpuSeconds) / sample.wallSeconds);
  const rss = samples.map((sample) => sample.peakRssBytes / MIB);
  const stored = samples.map((sample) => sample.storedBytes).filter((value) => value !== null && value !== undefined);
  return {
    runs: samples.length,
    wall: { median: median(walls), min: Math.min(...walls), max: Math.max(...walls) },
    throughput: { median: median(throughputs), min: Math.min(...throughputs), max: Math.max(...throughputs) },
    cpuPercent: median(cpuPercents),
    rssMiB: Math.max(...rss),
    storedBytes: stored.length ? median(stored) : null,
  };
}

const fixed = (value, digits = 1) => (value === undefined || value === null || Number.isNaN(value) ? 'n/a' : value.toFixed(digits));

/** Returns the rows of the results table as arrays of cells. */
export function resultRows(contenders, summaries) {
  return contenders
    .filter((contender) => summaries[contender.name])
    .map((contender) => {
      const s = summaries[contender.name];
      return [
        contender.name,
        String(s.runs),
        `${fixed(s.wall.median, 2)} (${fixed(s.wall.min, 2)}–${fixed(s.wall.max, 2)})`,
        `${fixed(s.throughput.median)} (${fixed(s.throughput.min)}–${fixed(s.throughput.max)})`,
        fixed(s.cpuPercent, 0),
        fixed(s.rssMiB, 0),
        s.storedBytes === null ? '–' : fixed(s.storedBytes / MIB, 1),
      ];
    });
}

export const RESULT_HEADER = ['contender', 'runs', 'wall s, median (min–max)', 'MB/s, median (min–max)', 'CPU %', 'peak RSS MiB', 'stored MiB'];

/**
 * Evaluates each target from the summaries. A target whose contenders did not
 * run is reported as "not measured". Returns rows of { target, measured, verdict }.
 */
export function evaluateTargets(summaries, memory, incremental) {
  const rows = [];
  const ratio = (a, b) => (summaries[a] && summaries[b] ? summaries[a].throughput.median / summaries[b].throughput.median : undefined);
  const add = (target, measured, met) => {
    let verdict = 'not measured';
    if (met !== undefined) verdict = met ? 'met' : 'missed';
    rows.push({ target, measured, verdict });
  };

  const local = ratio('hvbackup-local', 'gpg-file');
  add(
    'full backup to a local repository ≥ 1.3× the nbdcopy | gpg pipeline',
    local === undefined ? 'n/a' : `${fixed(local, 2)}× (hvbackup CPU ${fixed(summaries['hvbackup-local'].cpuPercent, 0)}% of one core, gpg pipeline ${fixed(summaries['gpg-file'].cpuPercent, 0)}%)`,
    local === undefined ? undefined : local >= 1.3,
  );

  const upload = ratio('hvbackup-rgw', 'upload-plain');
  add('full backup to RGW ≥ 80% of a plain multipart upload of the same bytes', upload === undefined ? 'n/a' : `${fixed(100 * upload, 0)}%`, upload === undefined ? undefined : upload >= 0.8);

  const gpgAws = ratio('hvbackup-rgw', 'gpg-aws');
  const restic = ratio('hvbackup-rgw', 'restic-rgw');
  add(
    'full backup to RGW faster than gpg | aws and restic',
    gpgAws === undefined || restic === undefined ? 'n/a' : `${fixed(gpgAws, 2)}× gpg | aws, ${fixed(restic, 2)}× restic`,
    gpgAws === undefined || restic === undefined ? undefined : gpgAws > 1 && restic > 1,
  );

  const restore = ratio('hvbackup-restore', 'gpg-decrypt');
  const staged = ratio('hvbackup-restore-staging', 'gpg-decrypt');
  const decryptOnly = ratio('hvbackup-restore', 'gpg-decrypt-null');
  add(
    'restore ≥ the throughput of gpg -d to a file',
    restore === undefined
      ? 'n/a'
      : [
          `${fixed(restore, 2)}× whole restore`,
          staged === undefined ? undefined : `${fixed(staged, 2)}× up to staging (without \`virsh define\`)`,
          decryptOnly === undefined ? undefined : `${fixed(decryptOnly, 2)}× gpg -d to /dev/null`,
        ]
          .filter(Boolean)
          .join(', '),
    restore === undefined ? undefined : restore >= 1,
  );

  const rssLimit = 256;
  const rssRuns = [summaries['hvbackup-local'], summaries['hvbackup-rgw'], summaries['hvbackup-restore']].filter(Boolean);
  if (memory.length > 0) {
    const worst = Math.max(...memory.map((row) => Math.max(row.backupRssMiB, row.restoreRssMiB)));
    const flat = memory.length >= 2 ? memory.at(-1).backupRssMiB <= 1.25 * memory[0].backupRssMiB && memory.at(-1).restoreRssMiB <= 1.25 * memory[0].restoreRssMiB : undefined;
    const sizes = memory.map((row) => `${row.label}: backup ${fixed(row.backupRssMiB, 0)}, restore ${fixed(row.restoreRssMiB, 0)} MiB`).join('; ');
    add(`peak RSS ≤ ${rssLimit} MiB for backup and restore, flat in the disk size`, sizes, worst <= rssLimit && flat !== false);
  } else if (rssRuns.length > 0) {
    const worst = Math.max(...rssRuns.map((s) => s.rssMiB));
    add(`peak RSS ≤ ${rssLimit} MiB for backup and restore (this disk size only; --memory checks flatness)`, `${fixed(worst, 0)} MiB at most`, worst <= rssLimit);
  } else {
    add(`peak RSS ≤ ${rssLimit} MiB for backup and restore`, 'n/a', undefined);
  }

  const onePercent = incremental.find((row) => row.percent === 1);
  if (onePercent) {
    const timeShare = onePercent.wallSeconds / incremental.full.wallSeconds;
    const byteShare = onePercent.storedBytes / incremental.full.storedBytes;
    add('incremental at 1% dirty ≤ 5% of the full backup time and ≤ 2% of its stored bytes', `${fixed(100 * timeShare)}% of the time, ${fixed(100 * byteShare, 2)}% of the bytes`, timeShare <= 0.05 && byteShare <= 0.02);
  } else {
    add('incremental at 1% dirty ≤ 5% of the full backup time and ≤ 2% of its stored bytes', 'n/a', undefined);
  }
  return rows;
}

/** Formats rows as a GitHub Markdown table. */
export function markdownTable(header, rows) {
  // A '|' inside a cell would end it, so cells escape it.
  const line = (cells) => `| ${cells.map((cell) => String(cell).replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Formats rows as an aligned text table for the terminal. */
export function textTable(header, rows) {
  const widths = header.map((cell, index) => Math.max(cell.length, ...rows.map((row) => String(row[index]).length)));
  const line = (cells) => cells.map((cell, index) => String(cell).padEnd(widths[index])).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}
