/**
 * Retention policy against a synthetic history: one backup a day at 02:00 UTC
 * from 2024-11-01 (a Friday) to 2025-12-15 (a Monday), 410 days, plus a burst
 * on 2025-12-15 at 08:00, 09:00, 09:30 and 10:00. "now" is 2025-12-15 11:00.
 *
 * In the chained variant Sundays are full backups and every other backup is
 * an incremental whose parent is the backup just before it. 2024-11-01 is
 * the first backup, so it is full too.
 *
 * Every expected id below was worked out by hand from a calendar (weekdays
 * and ISO weeks checked with `date -u -d DAY '+%a %G-W%V'`), not by the code.
 */
import { describe, expect, it } from 'vitest';

import { ConfigError } from '../../src/errors.js';
import { isoWeek, selectKept, type PolicyBackup, type RetentionPolicy } from '../../src/prune/policy.js';

const NOW = new Date('2025-12-15T11:00:00Z');
const DAY_MS = 86_400_000;

function idAt(time: Date): string {
  return `${time.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')}-000000`;
}

function buildHistory(chained: boolean): PolicyBackup[] {
  const times: Date[] = [];
  for (let day = Date.UTC(2024, 10, 1, 2); day <= Date.UTC(2025, 11, 15, 2); day += DAY_MS) times.push(new Date(day));
  for (const clock of ['08:00', '09:00', '09:30', '10:00']) times.push(new Date(`2025-12-15T${clock}:00Z`));

  return times.map((time, index) => {
    const full = !chained || index === 0 || (time.getUTCDay() === 0 && time.getUTCHours() === 2);
    return {
      id: idAt(time),
      time,
      type: full ? 'full' : 'incremental',
      parent: full ? null : idAt(times[index - 1]),
    };
  });
}

const fullHistory = buildHistory(false);
const chainedHistory = buildHistory(true);

/** Expands the short forms in the tables: "20251215T100000" becomes "20251215T100000Z-000000". */
function ids(...stamps: string[]): string[] {
  return stamps.map((stamp) => `${stamp}Z-000000`);
}

function keptIds(history: PolicyBackup[], policy: RetentionPolicy): string[] {
  return [...selectKept(history, policy, NOW).keep.keys()].sort();
}

describe('selectKept rules on full backups', () => {
  const cases: { name: string; policy: RetentionPolicy; kept: string[] }[] = [
    { name: 'keepLast 3', policy: { keepLast: 3 }, kept: ids('20251215T090000', '20251215T093000', '20251215T100000') },
    // Hour 09 has 09:00 and 09:30, and the newer one is kept for the hour.
    { name: 'keepHourly 3', policy: { keepHourly: 3 }, kept: ids('20251215T080000', '20251215T093000', '20251215T100000') },
    { name: 'keepDaily 3', policy: { keepDaily: 3 }, kept: ids('20251213T020000', '20251214T020000', '20251215T100000') },
    // 2025-12-15 is a Monday, so Sunday 2025-12-14 closes the week before it.
    { name: 'keepWeekly 3', policy: { keepWeekly: 3 }, kept: ids('20251207T020000', '20251214T020000', '20251215T100000') },
    { name: 'keepMonthly 3', policy: { keepMonthly: 3 }, kept: ids('20251031T020000', '20251130T020000', '20251215T100000') },
    // Only two years have backups, so the third count keeps the oldest backup.
    { name: 'keepYearly 3', policy: { keepYearly: 3 }, kept: ids('20241101T020000', '20241231T020000', '20251215T100000') },
    {
      // 14 months have backups (2024-11 to 2025-12), so the 15th count keeps the oldest.
      name: 'keepMonthly 15',
      policy: { keepMonthly: 15 },
      kept: ids(
        '20241101T020000', '20241130T020000', '20241231T020000', '20250131T020000', '20250228T020000',
        '20250331T020000', '20250430T020000', '20250531T020000', '20250630T020000', '20250731T020000',
        '20250831T020000', '20250930T020000', '20251031T020000', '20251130T020000', '20251215T100000',
      ),
    },
    {
      name: 'combined rules',
      policy: { keepLast: 2, keepDaily: 3, keepWeekly: 2, keepMonthly: 2, keepYearly: 1 },
      kept: ids('20251130T020000', '20251213T020000', '20251214T020000', '20251215T093000', '20251215T100000'),
    },
  ];

  for (const testCase of cases) {
    it(`selectKept ${testCase.name}`, () => {
      expect(keptIds(fullHistory, testCase.policy)).toEqual(testCase.kept);
    });
  }

  it('selectKept combined rule reasons', () => {
    const { keep } = selectKept(fullHistory, { keepLast: 2, keepDaily: 3, keepWeekly: 2, keepMonthly: 2, keepYearly: 1 }, NOW);

    expect(keep.get('20251215T100000Z-000000')).toEqual(['last', 'daily', 'weekly', 'monthly', 'yearly']);
    expect(keep.get('20251215T093000Z-000000')).toEqual(['last']);
    expect(keep.get('20251214T020000Z-000000')).toEqual(['daily', 'weekly']);
    expect(keep.get('20251213T020000Z-000000')).toEqual(['daily']);
    expect(keep.get('20251130T020000Z-000000')).toEqual(['monthly']);
  });

  it('selectKept oldest reason', () => {
    const { keep } = selectKept(fullHistory, { keepYearly: 3 }, NOW);
    expect(keep.get('20241101T020000Z-000000')).toEqual(['oldest yearly']);
  });

  it('selectKept remove list order', () => {
    const { keep, remove } = selectKept(fullHistory, { keepDaily: 3 }, NOW);

    expect(remove.length).toBe(414 - 3);
    expect(remove.slice(0, 5)).toEqual(ids('20251215T093000', '20251215T090000', '20251215T080000', '20251215T020000', '20251212T020000'));
    expect(remove[remove.length - 1]).toBe('20241101T020000Z-000000');
    expect(remove.some((id) => keep.has(id))).toBe(false);
  });

  it('selectKept unlimited daily', () => {
    const { keep } = selectKept(fullHistory, { keepDaily: -1 }, NOW);
    // 410 days, each with one kept backup. The burst day keeps only 10:00.
    expect(keep.size).toBe(410);
    expect(keep.has('20251215T100000Z-000000')).toBe(true);
    expect(keep.has('20251215T020000Z-000000')).toBe(false);
  });

  it('selectKept empty policy rejected', () => {
    expect(() => selectKept(fullHistory, {}, NOW)).toThrow(ConfigError);
    expect(() => selectKept(fullHistory, { keepDaily: 0 }, NOW)).toThrow(ConfigError);
  });

  it('selectKept negative count rejected', () => {
    expect(() => selectKept(fullHistory, { keepDaily: -2 }, NOW)).toThrow(/retention.keepDaily -2/);
  });
});

describe('selectKept calendar edges', () => {
  function backup(stamp: string): PolicyBackup {
    const id = `${stamp}Z-000000`;
    const time = new Date(`${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}T${stamp.slice(9, 11)}:${stamp.slice(11, 13)}:${stamp.slice(13, 15)}Z`);
    return { id, time, type: 'full', parent: null };
  }

  it('isoWeek at year boundaries', () => {
    expect(isoWeek(new Date('2024-12-29T12:00:00Z'))).toBe('2024-W52');
    expect(isoWeek(new Date('2024-12-30T00:00:00Z'))).toBe('2025-W01');
    expect(isoWeek(new Date('2025-01-01T23:59:59Z'))).toBe('2025-W01');
    expect(isoWeek(new Date('2021-01-03T02:00:00Z'))).toBe('2020-W53');
    expect(isoWeek(new Date('2026-01-05T00:00:00Z'))).toBe('2026-W02');
  });

  it('selectKept weekly across new year', () => {
    // 2024-12-30 (Monday) and 2025-01-01 share ISO week 2025-W01, and Sunday 2024-12-29 is in 2024-W52.
    const history = ['20241229T020000', '20241230T020000', '20250101T020000'].map(backup);
    const { keep, remove } = selectKept(history, { keepWeekly: 10 }, NOW);

    expect([...keep.keys()].sort()).toEqual(ids('20241229T020000', '20250101T020000'));
    expect(remove).toEqual(ids('20241230T020000'));
  });

  it('selectKept days in UTC', () => {
    // One hour apart, but on two UTC days and in two UTC months.
    const history = ['20250228T233000', '20250301T003000'].map(backup);

    expect(selectKept(history, { keepDaily: 1 }, NOW).remove).toEqual(ids('20250228T233000'));
    expect(selectKept(history, { keepMonthly: 2 }, NOW).keep.size).toBe(2);
  });

  it('selectKept future backup kept', () => {
    const history = ['20251214T020000', '20251215T020000', '20251216T020000'].map(backup);
    const { keep, remove } = selectKept(history, { keepLast: 1 }, NOW);

    expect(keep.get('20251216T020000Z-000000')).toEqual(['newer than now']);
    expect(keep.get('20251215T020000Z-000000')).toEqual(['last']);
    expect(remove).toEqual(ids('20251214T020000'));
  });

  it('selectKept empty history', () => {
    const { keep, remove } = selectKept([], { keepLast: 3 }, NOW);
    expect(keep.size).toBe(0);
    expect(remove).toEqual([]);
  });
});

describe('selectKept chain safety', () => {
  it('selectKept keepLast keeps chain', () => {
    const { keep } = selectKept(chainedHistory, { keepLast: 3 }, NOW);

    expect([...keep.keys()].sort()).toEqual(
      ids('20251214T020000', '20251215T020000', '20251215T080000', '20251215T090000', '20251215T093000', '20251215T100000'),
    );
    expect(keep.get('20251215T100000Z-000000')).toEqual(['last']);
    expect(keep.get('20251215T093000Z-000000')).toEqual(['last', 'parent of 20251215T100000Z-000000']);
    expect(keep.get('20251215T080000Z-000000')).toEqual(['parent of 20251215T090000Z-000000']);
    expect(keep.get('20251214T020000Z-000000')).toEqual(['parent of 20251215T020000Z-000000']);
  });

  it('selectKept monthly keeps chains', () => {
    // 2025-11-30 is a Sunday (full). 2025-10-31 is a Friday whose chain starts on Sunday 2025-10-26.
    expect(keptIds(chainedHistory, { keepMonthly: 3 })).toEqual(
      ids(
        '20251026T020000', '20251027T020000', '20251028T020000', '20251029T020000', '20251030T020000', '20251031T020000',
        '20251130T020000',
        '20251214T020000', '20251215T020000', '20251215T080000', '20251215T090000', '20251215T093000', '20251215T100000',
      ),
    );
  });

  it('selectKept yearly keeps chains', () => {
    // 2024-12-31 is a Tuesday on the chain from Sunday 2024-12-29. 2024-11-01 is the first, full backup.
    expect(keptIds(chainedHistory, { keepYearly: 3 })).toEqual(
      ids(
        '20241101T020000',
        '20241229T020000', '20241230T020000', '20241231T020000',
        '20251214T020000', '20251215T020000', '20251215T080000', '20251215T090000', '20251215T093000', '20251215T100000',
      ),
    );
  });

  it('selectKept missing parent reported', () => {
    const orphan: PolicyBackup = { id: '20251201T020000Z-000000', time: new Date('2025-12-01T02:00:00Z'), type: 'incremental', parent: '20251130T020000Z-000000' };
    const { keep, missingParents } = selectKept([orphan], { keepLast: 1 }, NOW);

    expect(keep.has(orphan.id)).toBe(true);
    expect(missingParents).toEqual([{ id: orphan.id, parent: '20251130T020000Z-000000' }]);
  });

  it('selectKept never breaks chains', () => {
    // A small linear congruential generator makes the policies repeatable.
    let seed = 12345;
    const next = (limit: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return (seed % (limit + 2)) - 1; // -1 (no limit) to limit
    };

    for (let round = 0; round < 60; round += 1) {
      const policy: RetentionPolicy = {
        keepLast: next(5),
        keepHourly: next(6),
        keepDaily: next(20),
        keepWeekly: next(10),
        keepMonthly: next(15),
        keepYearly: next(3),
      };
      if (Object.values(policy).every((count) => count === 0)) policy.keepLast = 1;

      const { keep, remove } = selectKept(chainedHistory, policy, NOW);
      const broken = chainedHistory.filter((backup) => keep.has(backup.id) && backup.parent !== null && !keep.has(backup.parent));

      expect(broken, JSON.stringify(policy)).toEqual([]);
      expect(keep.size + remove.length, JSON.stringify(policy)).toBe(chainedHistory.length);
    }
  });
});
