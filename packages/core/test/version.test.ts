import { describe, expect, it } from 'vitest';
import { compareVersions, formatVersion, parseVersion, versionAtLeast } from '../src/version.js';

describe('tool versions', () => {
  it('reads the forms nft and iptables print', () => {
    expect(parseVersion('nftables v1.0.6 (Lester Gooch #5)')).toEqual([1, 0, 6]);
    expect(parseVersion('nftables v0.9.8 (E.D.S.)')).toEqual([0, 9, 8]);
    expect(parseVersion('nftables v1.1 (x)')).toEqual([1, 1, 0]);
    expect(parseVersion('iptables v1.8.9 (nf_tables)')).toEqual([1, 8, 9]);
    expect(parseVersion('no version here')).toBeUndefined();
  });

  it('compares them numerically, not as text', () => {
    expect(compareVersions([1, 0, 10], [1, 0, 9])).toBeGreaterThan(0);
    expect(compareVersions([1, 0, 1], [1, 0, 1])).toBe(0);
    expect(compareVersions([0, 9, 9], [1, 0, 1])).toBeLessThan(0);
    expect(versionAtLeast([1, 8, 10], [1, 8, 4])).toBe(true);
    expect(versionAtLeast([1, 8, 3], [1, 8, 4])).toBe(false);
    expect(formatVersion([1, 0, 6])).toBe('1.0.6');
  });
});
