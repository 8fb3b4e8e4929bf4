import { detectIptablesFlavour, type IptablesMode } from '@route-controller/backend-iptables';
import type { IpFamily } from '@route-controller/core';
import { Netns } from '@route-controller/lab';
import { expect, it } from 'vitest';
import { restoreInto } from '../src/iptables-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

/** `count` filter rules, as a node's firewall or kube-proxy would hold. */
function filterRules(family: IpFamily, count: number): string {
  const lines = ['*filter'];
  for (let i = 1; i <= count; i += 1) {
    lines.push(`-A INPUT -s ${family === 'ipv4' ? `192.0.2.${i}/32` : `2001:db8::${i}/128`} -j ACCEPT`);
  }
  return `${[...lines, 'COMMIT'].join('\n')}\n`;
}

// kubelet's hint chains, in mangle as kubelet creates them.
const KUBELET_MANGLE = '*mangle\n:KUBE-IPTABLES-HINT - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n';

/** Tables the kernel holds in this namespace: nft ones, and legacy ones per family. */
async function tables(ns: Netns): Promise<{ nft: string; legacy4: string; legacy6: string }> {
  const read = async (path: string) => (await ns.exec('cat', [path])).stdout.trim();
  return {
    nft: (await ns.must('nft', ['list', 'tables'])).stdout.trim(),
    legacy4: await read('/proc/net/ip_tables_names'),
    legacy6: await read('/proc/net/ip6_tables_names'),
  };
}

async function withNamespace(body: (ns: Netns) => Promise<void>): Promise<void> {
  const ns = await Netns.create('ipt-detect');
  try {
    await body(ns);
  } finally {
    await ns.delete();
  }
}

const seed = (ns: Netns, mode: IptablesMode, family: IpFamily, payload: string) =>
  restoreInto(ns, mode, family, payload);

describeKernel('iptables flavour detection in real namespaces', () => {
  it('a blank node => nft, and detection itself creates no table in either flavour', async () => {
    await withNamespace(async (ns) => {
      const result = await detectIptablesFlavour(ns.runner);
      expect(result.mode).toBe('nft');
      expect(result.reason).toMatch(/blank node/);
      expect(result.evidence).toMatchObject({ nftHint: false, legacyHint: false, nftRules: 0, legacyRules: 0 });
      expect(result.evidence.reads.every((read) => read.ok)).toBe(true);
      expect(await tables(ns)).toEqual({ nft: '', legacy4: '', legacy6: '' });
    });
  });

  it('legacy rules only => legacy, by count', async () => {
    await withNamespace(async (ns) => {
      await seed(ns, 'legacy', 'ipv4', filterRules('ipv4', 3));
      await seed(ns, 'legacy', 'ipv6', filterRules('ipv6', 2));
      const result = await detectIptablesFlavour(ns.runner);
      expect(result.mode).toBe('legacy');
      expect(result.evidence).toMatchObject({ legacyRules: 5, nftRules: 0, nftHint: false, legacyHint: false });
      // iptables-nft-save warns about the legacy tables; the warning is evidence, not a rule.
      expect(result.evidence.legacyTablesWarning).toBe(true);
      // Reading did not add a mangle table to legacy (no "-t mangle" there).
      expect((await tables(ns)).legacy4).toBe('filter');
    });
  });

  it('nft rules plus KUBE-IPTABLES-HINT in nft mangle => nft, despite more legacy rules (decoy)', async () => {
    await withNamespace(async (ns) => {
      await seed(ns, 'nft', 'ipv4', KUBELET_MANGLE + filterRules('ipv4', 2));
      await seed(ns, 'legacy', 'ipv4', filterRules('ipv4', 8));
      const result = await detectIptablesFlavour(ns.runner);
      expect(result.mode).toBe('nft');
      expect(result.reason).toBe("kubelet's KUBE-IPTABLES-HINT found in iptables-nft-save -t mangle");
      expect(result.evidence).toMatchObject({ nftHint: true, legacyHint: false, nftRules: 2, legacyRules: 8 });
    });
  });

  it('the hint in ip6tables-nft mangle only => nft', async () => {
    await withNamespace(async (ns) => {
      await seed(ns, 'nft', 'ipv6', KUBELET_MANGLE);
      await seed(ns, 'legacy', 'ipv4', filterRules('ipv4', 3));
      const result = await detectIptablesFlavour(ns.runner);
      expect(result.mode).toBe('nft');
      expect(result.reason).toBe("kubelet's KUBE-IPTABLES-HINT found in ip6tables-nft-save -t mangle");
    });
  });

  it("kubelet's hint chains in legacy => legacy, despite more nft rules (decoy)", async () => {
    await withNamespace(async (ns) => {
      await seed(ns, 'legacy', 'ipv4', KUBELET_MANGLE);
      await seed(ns, 'nft', 'ipv4', filterRules('ipv4', 4));
      await seed(ns, 'nft', 'ipv6', filterRules('ipv6', 4));
      const result = await detectIptablesFlavour(ns.runner);
      expect(result.mode).toBe('legacy');
      expect(result.reason).toBe("kubelet's KUBE-IPTABLES-HINT found in iptables-legacy-save");
      expect(result.evidence).toMatchObject({ nftHint: false, legacyHint: true, nftRules: 8, legacyRules: 0 });
    });
  });

  it('nft rules only => nft, by count; a tie => nft', async () => {
    await withNamespace(async (ns) => {
      await seed(ns, 'nft', 'ipv4', filterRules('ipv4', 2));
      expect((await detectIptablesFlavour(ns.runner)).reason).toBe(
        'no kubelet hint chain; 0 legacy and 2 nft rules: nft has more',
      );
      await seed(ns, 'legacy', 'ipv6', filterRules('ipv6', 2));
      const tie = await detectIptablesFlavour(ns.runner);
      expect(tie.mode).toBe('nft');
      expect(tie.reason).toMatch(/a tie of 2 legacy and 2 nft rules/);
    });
  });
});
