import { anyOrder, FakeCommandRunner } from '@route-controller/core/testing';
import { describe, expect, it } from 'vitest';
import { readKubeProxyDrops, unallocatedDropCidrs } from '../src/kube-proxy.js';
import { fixture } from './helpers.js';

/** kube-proxy's drop of unallocated ClusterIPs, read from listings captured from a real nft (fixtures/README.md). */

const NOT_FOUND = `Error: No such file or directory
list chain ip kube-proxy cluster-ips-check
              ^^^^^^^^^^
`;

const list = (family: 'ip' | 'ip6') => ['-j', 'list', 'chain', family, 'kube-proxy', 'cluster-ips-check'];

describe("kube-proxy's cluster-ips-check chain", () => {
  it('finds the dropped CIDRs: one prefix (listed without braces), or a set of them; not the @cluster-ips reject', () => {
    expect(unallocatedDropCidrs(fixture('kube-proxy-cluster-ips-check-ip'), 'ipv4')).toEqual(['10.96.0.0/16']);
    expect(unallocatedDropCidrs(fixture('kube-proxy-cluster-ips-check-ip6'), 'ipv6')).toEqual([
      'fd00:10:96::/112',
      'fd00:10:97::/112',
    ]);
    // The IPv4 listing read as IPv6 matches nothing: the payload protocol must be the family's.
    expect(unallocatedDropCidrs(fixture('kube-proxy-cluster-ips-check-ip'), 'ipv6')).toEqual([]);
  });

  it('a chain whose rule matches but does not drop is no coverage', () => {
    const rejectOnly = fixture('kube-proxy-cluster-ips-check-ip').replace(/"drop":\s*null/, '"accept": null');
    expect(rejectOnly).toContain('"accept": null');
    expect(unallocatedDropCidrs(rejectOnly, 'ipv4')).toEqual([]);
  });

  it('reads exactly the two chains (never the ruleset); a missing table is "absent"', async () => {
    const runner = new FakeCommandRunner([
      anyOrder(
        { file: 'nft', args: list('ip'), result: { stdout: fixture('kube-proxy-cluster-ips-check-ip') } },
        { file: 'nft', args: list('ip6'), result: { exitCode: 1, stderr: NOT_FOUND } },
      ),
    ]);
    const drops = await readKubeProxyDrops(runner);
    expect(drops.ipv4).toEqual({ kind: 'drops', cidrs: ['10.96.0.0/16'] });
    expect(drops.ipv6).toMatchObject({ kind: 'absent' });
    expect(runner.remaining).toEqual([]);
  });

  it('no nft, or no permission, is "unknown", not an error', async () => {
    const runner = new FakeCommandRunner([
      anyOrder(
        { file: 'nft', args: list('ip'), fails: 'missing' },
        { file: 'nft', args: list('ip6'), result: { exitCode: 1, stderr: 'Error: Operation not permitted\n' } },
      ),
    ]);
    const drops = await readKubeProxyDrops(runner);
    expect(drops.ipv4.kind).toBe('unknown');
    expect(drops.ipv6).toMatchObject({ kind: 'unknown', detail: expect.stringContaining('Operation not permitted') });
  });
});
