import { describe, expect, it } from 'vitest';
import { classifyStderr, firstLine, PERMISSION_DENIED } from '../src/classify-stderr.js';

describe('stderr classification', () => {
  it('recognises the permission failures of nft and iptables', () => {
    for (const stderr of [
      'Error: Could not process rule: Operation not permitted',
      'iptables-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)',
      'ip6tables-legacy-save v1.8.9 (legacy): Cannot initialize: Permission denied (you must be root)',
    ]) {
      expect(PERMISSION_DENIED.test(stderr)).toBe(true);
    }
    expect(PERMISSION_DENIED.test('Error: No such file or directory')).toBe(false);
  });

  it('returns the first matching rule, or undefined', () => {
    const rules = [
      { pattern: /exists/, classification: 'exists' },
      { pattern: /File/, classification: 'file' },
    ];
    expect(classifyStderr('Error: File exists', rules)).toBe('exists');
    expect(classifyStderr('File missing', rules)).toBe('file');
    expect(classifyStderr('something else', rules)).toBeUndefined();
  });

  it('finds the first non-blank line', () => {
    expect(firstLine('\n  \n  first \nsecond')).toBe('first');
    expect(firstLine('')).toBe('');
  });
});
