import { describe, expect, it } from 'vitest';

import { formatMode, groupOtherBits, pathAncestors, searchableBy } from '../../src/doctor/modes.js';

describe('modes', () => {
  it('groupOtherBits is zero for 0600', () => {
    expect(groupOtherBits(0o100600)).toBe(0);
  });

  it('groupOtherBits finds group read', () => {
    expect(groupOtherBits(0o100640)).toBe(0o040);
  });

  it('formatMode pads to four digits', () => {
    expect(formatMode(0o100644)).toBe('0644');
    expect(formatMode(0o42770)).toBe('2770');
  });

  it('searchableBy uses the owner class', () => {
    expect(searchableBy({ mode: 0o700, uid: 1000, gid: 1000 }, { uid: 1000, groups: [] })).toBe(true);
    expect(searchableBy({ mode: 0o070, uid: 1000, gid: 1000 }, { uid: 1000, groups: [1000] })).toBe(false);
  });

  it('searchableBy uses the group class', () => {
    expect(searchableBy({ mode: 0o710, uid: 0, gid: 64055 }, { uid: 64055, groups: [108, 64055] })).toBe(true);
    expect(searchableBy({ mode: 0o701, uid: 0, gid: 64055 }, { uid: 64055, groups: [64055] })).toBe(false);
  });

  it('searchableBy uses the other class', () => {
    expect(searchableBy({ mode: 0o711, uid: 0, gid: 0 }, { uid: 64055, groups: [64055] })).toBe(true);
    expect(searchableBy({ mode: 0o700, uid: 0, gid: 0 }, { uid: 64055, groups: [64055] })).toBe(false);
  });

  it('searchableBy lets root in with any x bit', () => {
    expect(searchableBy({ mode: 0o001, uid: 1000, gid: 1000 }, { uid: 0, groups: [0] })).toBe(true);
    expect(searchableBy({ mode: 0o600, uid: 1000, gid: 1000 }, { uid: 0, groups: [0] })).toBe(false);
  });

  it('pathAncestors lists root to path', () => {
    expect(pathAncestors('/var/lib/hvbackup')).toEqual(['/', '/var', '/var/lib', '/var/lib/hvbackup']);
  });
});
