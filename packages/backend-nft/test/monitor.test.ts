import { describe, expect, it } from 'vitest';
import { classifyMonitorLine, describeMonitorLine, NFT_MONITOR_ARGS, nftMonitorSpec } from '../src/monitor.js';

// The monitor both backends share: what it runs, and the lines no backend's test ever sees.
describe('the nft monitor spec', () => {
  const calls: string[] = [];
  const classify = classifyMonitorLine((line) => {
    calls.push(line);
    return line.includes('"ours"');
  });

  it('runs `<nft> -j monitor ruleset` and sorts lines with the test it is given', () => {
    const spec = nftMonitorSpec('/usr/sbin/nft', (line) => line.includes('mine'));
    expect(spec.file).toBe('/usr/sbin/nft');
    expect(spec.args).toEqual(['-j', 'monitor', 'ruleset']);
    expect(NFT_MONITOR_ARGS).toEqual(spec.args);
    expect(spec.classify('{"add": {"table": {"name": "mine"}}}')).toBe('ours');
    expect(spec.classify('{"add": {"table": {"name": "theirs"}}}')).toBe('other');
    expect(spec.describe?.('{"add": {"table": {"family": "ip", "name": "mine"}}}')).toBe('add table ip mine');
    expect(spec.subscribed).toBeTypeOf('function');
  });

  it('recognises lost events and ignores other comments and blank lines, without asking the backend', () => {
    calls.length = 0;
    expect(classify('# ERROR: We lost some netlink events!')).toBe('lost');
    expect(classify('# new generation 6 by process 13335 (nft)')).toBe('ignore');
    expect(classify('')).toBe('ignore');
    expect(calls).toEqual([]);
    expect(classify('{"x": "ours"}')).toBe('ours');
    expect(classify('{"x": "theirs"}')).toBe('other');
  });

  it('describes a line it cannot parse as it came, shortened', () => {
    expect(describeMonitorLine('not json')).toBe('not json');
    expect(describeMonitorLine('x'.repeat(300))).toHaveLength(200);
  });
});
