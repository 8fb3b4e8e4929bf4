import { NftBackend } from '@route-controller/backend-nft';
import { desiredState, parseCidrList } from '@route-controller/core';
import { LAB, LoopLab, type LoopLabOptions } from '@route-controller/lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foreignTables, kernelRecords } from '../src/nft-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

const FAMILIES = ['ipv4', 'ipv6'] as const;
const serviceCidrs = parseCidrList(`${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`).cidrs;
const wider = parseCidrList(`${LAB.serviceCidr.ipv4},10.100.0.0/16,${LAB.serviceCidr.ipv6}`).cidrs;

/**
 * iptables-legacy-save prints each built-in chain's policy counters ("[3:252]"), which traffic
 * changes whatever we do: zero them before comparing, as LoopLab.nodeFirewall() does.
 */
const withoutCounters = (text: string) => text.replace(/\[\d+:\d+\]/g, '[0:0]');

/** Everything the node holds besides our table: the nft tables and both legacy iptables. */
async function notOurs(lab: LoopLab): Promise<string> {
  const legacy: string[] = [];
  for (const bin of ['iptables-legacy-save', 'ip6tables-legacy-save']) {
    legacy.push(withoutCounters((await lab.node.must(bin, [])).stdout.replace(/^#.*\n/gm, '')));
  }
  return [await foreignTables(lab.node), ...legacy].join('\n---\n');
}

const nodes: [string, LoopLabOptions][] = [
  [
    'kube-proxy on iptables-nft, a pod ACCEPT below its jump in FORWARD',
    { kubeProxy: 'iptables-nft', podAcceptRule: 'iptables-nft' },
  ],
  [
    'kube-proxy on iptables-legacy, a pod ACCEPT in legacy FORWARD (mixed node)',
    { kubeProxy: 'iptables-legacy', podAcceptRule: 'iptables-legacy' },
  ],
  ['kube-proxy in nftables mode', { kubeProxy: 'nft' }],
];

describeKernel('nft backend in the loop lab', () => {
  describe.each(nodes)('%s', (_name, options) => {
    let lab: LoopLab;
    let backend: NftBackend;
    let firewallBefore: string;
    let foreignBefore: string;

    beforeAll(async () => {
      lab = await LoopLab.create(options);
      backend = new NftBackend({ runner: lab.node.runner });
      firewallBefore = await lab.nodeFirewall();
      foreignBefore = await notOurs(lab);
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it("the loop is open before the backend acts, and kube-proxy's REJECT refuses the endpoint-less Service", async () => {
      for (const family of FAMILIES) {
        expect(await lab.measureLoop(family, 10)).toBeGreaterThan(200);
        expect(await lab.connect(family)).toMatchObject({ outcome: 'refused', code: 'ECONNREFUSED' });
      }
    });

    it('apply ends both loops, spares the live Service from pod and node, and counts the drops', async () => {
      const result = await backend.apply(desiredState(serviceCidrs, 'drop'));
      expect(result).toMatchObject({ changed: true, writes: 1 });
      for (const family of FAMILIES) expect(await lab.measureLoop(family, 10)).toBe(0);
      for (const family of FAMILIES) {
        expect(await lab.pingLiveServiceFromPod(family)).toEqual({ sent: 3, received: 3 });
        expect(await lab.pingLiveServiceFromNode(family)).toEqual({ sent: 3, received: 3 });
      }
      const observed = await backend.observe();
      expect(observed.problems).toEqual([]);
      // Ten pings per family, each dropped once on its first pass through the node.
      expect(observed.ipv4.counters?.packets).toBe(10);
      expect(observed.ipv6.counters?.packets).toBe(10);
      expect(await notOurs(lab)).toBe(foreignBefore);
    });

    it("kube-proxy's REJECT still answers first: the endpoint-less Service refuses at once, and our chain never sees it", async () => {
      for (const family of FAMILIES) {
        expect(await lab.connect(family)).toMatchObject({ outcome: 'refused', code: 'ECONNREFUSED' });
      }
      const recorded = (await kernelRecords(lab.node)).map((record) => record.destination);
      expect(recorded).not.toContain(LAB.endpointlessService.ipv4);
      expect(recorded).not.toContain(LAB.endpointlessService.ipv6);
      // The stale ClusterIPs pinged above are recorded: the records work, they just never saw it.
      expect(recorded).toContain(LAB.staleService.ipv4);
      const observed = await backend.observe();
      expect(observed.ipv4.counters?.packets).toBe(10);
      expect(observed.ipv6.counters?.packets).toBe(10);
    });

    it('re-applying the same state writes nothing; changing CIDRs and action keeps foreign tables intact', async () => {
      expect(await backend.apply(desiredState(serviceCidrs, 'drop'))).toMatchObject({ changed: false, writes: 0 });
      expect(await backend.apply(desiredState(wider, 'drop'))).toMatchObject({ changed: true, writes: 1 });
      expect((await backend.observe()).ipv4.counters?.packets).toBe(10);
      expect(await backend.apply(desiredState(wider, 'reject'))).toMatchObject({ changed: true, writes: 1 });
      for (const family of FAMILIES) expect(await lab.measureLoop(family, 5)).toBe(0);
      expect(await lab.pingLiveServiceFromPod('ipv4')).toEqual({ sent: 3, received: 3 });
      expect(await notOurs(lab)).toBe(foreignBefore);
    });

    it('cleanup restores the node firewall exactly, and the loop comes back', async () => {
      expect(await backend.cleanup()).toMatchObject({ removed: true });
      expect(await lab.nodeFirewall()).toBe(firewallBefore);
      expect(await notOurs(lab)).toBe(foreignBefore);
      expect(await backend.cleanup()).toMatchObject({ removed: false });
      for (const family of FAMILIES) expect(await lab.measureLoop(family, 2)).toBeGreaterThan(40);
    });
  });
});
