import type { IpFamily } from '@route-controller/core';
import { LAB, LoopLab, type LoopLabOptions } from '@route-controller/lab';
import { expect, it } from 'vitest';
import { binary, rulesOfTable } from '../src/iptables-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * The two kernel facts our placement rests on (both backends put their drop after filter: nft at
 * priority filter + 20, iptables in the security table): netfilter runs every base chain of the
 * forward hook in priority order, and
 * 1. an ACCEPT ends only its own chain: a DROP in a later base chain still drops;
 * 2. a REJECT ends the packet: kube-proxy's REJECT for a Service without endpoints answers first,
 *    and a later DROP never sees the packet (a DROP before it turns the refusal into a hang).
 * Each test builds its own loop lab, with kube-proxy's rules and a CNI-like ACCEPT as a node has them.
 */

const FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6'];
const FLAVOURS = ['legacy', 'nft'] as const;
type Flavour = (typeof FLAVOURS)[number];

/** A DROP of the Service CIDRs in a base chain of its own at `priority`, counting what it sees. */
const nftDrop = (priority: number) => `table inet rct-later {
  chain forward {
    type filter hook forward priority ${priority}; policy accept;
    ip daddr ${LAB.serviceCidr.ipv4} counter drop
    ip6 daddr ${LAB.serviceCidr.ipv6} counter drop
  }
}
`;

/** Packets the rct-later chain's DROPs counted, both families. */
async function nftDropped(lab: LoopLab): Promise<number> {
  const listing = await lab.node.must('nft', ['-j', 'list', 'chain', 'inet', 'rct-later', 'forward']);
  const entries = (
    JSON.parse(listing.stdout) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] }
  ).nftables;
  return entries.reduce(
    (sum, entry) => sum + (entry.rule?.expr.find((statement) => statement.counter)?.counter?.packets ?? 0),
    0,
  );
}

/** A DROP of the family's Service CIDR in the security table's FORWARD, with the given flavour. */
async function securityDrop(lab: LoopLab, flavour: Flavour): Promise<void> {
  for (const family of FAMILIES) {
    await lab.node.must(binary(flavour, family, ''), [
      '-w',
      '-t',
      'security',
      '-A',
      'FORWARD',
      '-d',
      LAB.serviceCidr[family],
      '-j',
      'DROP',
    ]);
  }
}

/** The packet counts of the rules of `table` that match `rule` (the text after "-A "), from `-save -c`. */
function counted(save: string, table: string, rule: RegExp): number[] {
  const counts: number[] = [];
  let current = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) current = line.slice(1);
    const match = /^\[(\d+):\d+\] -A (.*)$/.exec(line);
    if (current === table && match && rule.test(match[2] ?? '')) counts.push(Number(match[1]));
  }
  return counts;
}

const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);

/** Packets the security table's DROPs counted, both families. */
async function securityDropped(lab: LoopLab, flavour: Flavour): Promise<number> {
  let total = 0;
  for (const family of FAMILIES) {
    const save = (await lab.node.must(binary(flavour, family, 'save'), ['-c'])).stdout;
    total += sum(counted(save, 'security', /^FORWARD -d \S+ -j DROP$/));
  }
  return total;
}

/** Packets the CNI-like ACCEPT in filter FORWARD counted (it ran, and accepted), IPv4. */
async function acceptCounted(lab: LoopLab, flavour: Flavour): Promise<number> {
  const save = (await lab.node.must(binary(flavour, 'ipv4', 'save'), ['-c'])).stdout;
  return sum(counted(save, 'filter', /^FORWARD -s \S+ -j ACCEPT$/));
}

async function inLab(options: LoopLabOptions, body: (lab: LoopLab) => Promise<void>): Promise<void> {
  const lab = await LoopLab.create(options);
  try {
    await body(lab);
  } finally {
    await lab.destroy();
  }
}

describeKernel('kernel facts: the order of base chains at the forward hook', () => {
  for (const flavour of FLAVOURS) {
    it(`an ACCEPT in iptables-${flavour}'s filter FORWARD does not stop a later DROP: nft at priority filter + 20, the security table of either flavour`, async () => {
      await inLab({ kubeProxy: 'none', podAcceptRule: `iptables-${flavour}` }, async (lab) => {
        // Without a later DROP the ACCEPT lets the stale packets loop.
        for (const family of FAMILIES) expect(await lab.measureLoop(family, 4)).toBeGreaterThan(80);
        expect(await acceptCounted(lab, flavour)).toBeGreaterThan(0);

        await lab.node.must('nft', ['-f', '-'], nftDrop(20));
        for (const family of FAMILIES) expect(await lab.measureLoop(family, 4)).toBe(0);
        expect(await nftDropped(lab)).toBe(8);
        await lab.node.must('nft', ['delete', 'table', 'inet', 'rct-later']);

        for (const security of FLAVOURS) {
          await securityDrop(lab, security);
          for (const family of FAMILIES) expect(await lab.measureLoop(family, 4)).toBe(0);
          expect(await securityDropped(lab, security)).toBe(8);
          for (const family of FAMILIES)
            await lab.node.must(binary(security, family, ''), ['-w', '-t', 'security', '-F']);
        }
        // And the ACCEPT saw every one of them first.
        expect(await acceptCounted(lab, flavour)).toBeGreaterThan(8);
      });
    });
  }

  const kubeProxies = ['iptables-legacy', 'iptables-nft', 'nft'] as const;
  for (const kubeProxy of kubeProxies) {
    it(`kube-proxy's REJECT (${kubeProxy}) answers first: the endpoint-less Service is refused, and a later DROP never sees the packet; a DROP before it turns the refusal into a hang`, async () => {
      const podAcceptRule = kubeProxy === 'nft' ? undefined : kubeProxy;
      await inLab({ kubeProxy, ...(podAcceptRule ? { podAcceptRule } : {}) }, async (lab) => {
        await lab.node.must('nft', ['-f', '-'], nftDrop(20));
        await securityDrop(lab, 'legacy');
        await securityDrop(lab, 'nft');
        for (const family of FAMILIES) {
          const connect = await lab.connect(family);
          expect(connect, family).toMatchObject({ outcome: 'refused', code: 'ECONNREFUSED' });
        }
        expect(await nftDropped(lab)).toBe(0);
        expect(await securityDropped(lab, 'legacy')).toBe(0);
        expect(await securityDropped(lab, 'nft')).toBe(0);
        // The later DROPs are live: a stale ClusterIP's packets end there.
        expect(await lab.measureLoop('ipv4', 2)).toBe(0);
        expect(await nftDropped(lab)).toBe(2);

        // A DROP that runs before kube-proxy's REJECT (priority -200: before filter, and before
        // kube-proxy's nftables chains at -110) swallows the SYN: the client hangs.
        await lab.node.must('nft', ['-f', '-'], nftDrop(-200).replace('rct-later', 'rct-earlier'));
        for (const family of FAMILIES) {
          expect(await lab.connect(family, { timeoutMs: 1500 }), family).toMatchObject({ outcome: 'timeout' });
        }
      });
    });
  }

  it("iptables' REJECT target works in filter only: a REJECT in the security table is refused by both flavours", async () => {
    await inLab({ kubeProxy: 'none' }, async (lab) => {
      for (const flavour of FLAVOURS) {
        const result = await lab.node.exec(
          binary(flavour, 'ipv4', 'restore'),
          ['--noflush', '-w', '5'],
          REJECT_IN_SECURITY,
        );
        expect(result.exitCode, flavour).not.toBe(0);
        expect(rulesOfTable((await lab.node.must(binary(flavour, 'ipv4', 'save'), [])).stdout, 'security')).toEqual([]);
      }
    });
  });
});

const REJECT_IN_SECURITY = `*security
-A FORWARD -d ${LAB.serviceCidr.ipv4} -j REJECT --reject-with icmp-admin-prohibited
COMMIT
`;
