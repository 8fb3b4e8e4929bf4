import { IptablesBackend, type IptablesMode } from '@route-controller/backend-iptables';
import type { IpFamily } from '@route-controller/core';
import { desired } from '@route-controller/core/testing';
import { LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { withoutEmptySecurityTables } from '../src/firewall-compare.js';
import { binary, forwardRules } from '../src/iptables-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

const FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6'];
const POD_NETWORK: Readonly<Record<IpFamily, string>> = { ipv4: '10.244.0.0/16', ipv6: 'fd00:244::/32' };
/**
 * lab.nodeFirewall() without the policy counters iptables-legacy-save prints on chain lines even
 * without -c: they grow with the test's own pings (nat PREROUTING), whoever touched the rules.
 */
const firewallWithoutCounters = async (lab: LoopLab) => (await lab.nodeFirewall()).replace(/ \[\d+:\d+\]$/gm, '');

const OUR_JUMP =
  '-A FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER';
const KUBE_PROXY_JUMP =
  '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES';

// Proof with packets: kube-proxy (its DNAT, and its REJECT for a Service without endpoints) and a
// CNI-like ACCEPT for pod traffic below it in filter FORWARD, both in the mode's flavour, as on a
// real node; the backend must end the loop in both families and leave the endpoint-less Service
// refusing at once.
for (const mode of ['legacy', 'nft'] as const satisfies readonly IptablesMode[]) {
  describeKernel(`iptables-${mode} backend in the loop lab`, () => {
    let lab: LoopLab;
    let backend: IptablesBackend;
    let before: string;
    let filterBefore: Record<IpFamily, string[]>;
    const serviceCidrs = desired([LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6]);

    beforeAll(async () => {
      lab = await LoopLab.create({ kubeProxy: `iptables-${mode}`, podAcceptRule: `iptables-${mode}` });
      backend = new IptablesBackend({ mode, runner: lab.node.runner });
      before = await firewallWithoutCounters(lab);
      filterBefore = {
        ipv4: await forwardRules(lab.node, mode, 'ipv4', 'filter'),
        ipv6: await forwardRules(lab.node, mode, 'ipv6', 'filter'),
      };
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it("without us, the pod ACCEPT lets stale-ClusterIP packets loop in both families, and kube-proxy's REJECT refuses the endpoint-less Service", async () => {
      for (const family of FAMILIES) {
        expect(filterBefore[family]).toEqual([KUBE_PROXY_JUMP, `-A FORWARD -s ${POD_NETWORK[family]} -j ACCEPT`]);
        expect(await lab.measureLoop(family, 10)).toBeGreaterThan(200);
        expect(await lab.connect(family)).toMatchObject({ outcome: 'refused', code: 'ECONNREFUSED' });
      }
    });

    it('probe finds the mode usable for both families, our rules to go in the security table', async () => {
      const availability = await backend.probe();
      expect(availability.available, availability.reason).toBe(true);
      expect(backend.capabilities.families).toEqual(['ipv4', 'ipv6']);
      expect(availability.checks.find((check) => check.name === 'placement')?.detail).toMatch(
        /^security table FORWARD \(after filter/,
      );
      expect(availability.warnings).toEqual([]);
    });

    it("apply puts our jump first in security FORWARD, leaves filter alone, ends both loops, and kube-proxy's REJECT still answers first", async () => {
      const result = await backend.apply(serviceCidrs);
      expect(result).toMatchObject({ changed: true, writes: 2 });
      expect(result.warnings).toBeUndefined();
      for (const family of FAMILIES) {
        expect(await forwardRules(lab.node, mode, family)).toEqual([OUR_JUMP]);
        expect(await forwardRules(lab.node, mode, family, 'filter')).toEqual(filterBefore[family]);
        expect(await lab.measureLoop(family, 10)).toBe(0);
        expect(await lab.connect(family)).toMatchObject({ outcome: 'refused', code: 'ECONNREFUSED' });
      }
    });

    it('the live Service still answers from the pod and from the node', async () => {
      for (const family of FAMILIES) {
        expect(await lab.pingLiveServiceFromPod(family)).toEqual({ sent: 3, received: 3 });
        expect(await lab.pingLiveServiceFromNode(family)).toEqual({ sent: 3, received: 3 });
      }
    });

    it('observe counts the dropped packets per family, and a resync writes nothing', async () => {
      const observed = await backend.observe();
      expect(observed.problems).toEqual([]);
      for (const family of FAMILIES) {
        // Ten pings were dropped per family in the loop measurement above.
        expect(observed[family].counters?.packets ?? 0).toBeGreaterThanOrEqual(10);
        expect(observed[family].counters?.bytes ?? 0).toBeGreaterThan(0);
      }
      expect(await backend.apply(serviceCidrs)).toMatchObject({ changed: false, writes: 0 });
    });

    it('an ACCEPT inserted first in filter FORWARD changes nothing: the loop stays closed, nothing drifted', async () => {
      for (const family of FAMILIES) {
        await lab.node.must(binary(mode, family, ''), ['-w', '-I', 'FORWARD', '1', '-j', 'ACCEPT']);
      }
      try {
        for (const family of FAMILIES) expect(await lab.measureLoop(family, 5)).toBe(0);
        expect((await backend.observe()).problems).toEqual([]);
      } finally {
        for (const family of FAMILIES) {
          await lab.node.must(binary(mode, family, ''), ['-w', '-D', 'FORWARD', '-j', 'ACCEPT']);
        }
      }
    });

    it('an ACCEPT inserted above our jump in security FORWARD reopens the loop; the next apply moves the jump back', async () => {
      const security = ['-w', '-t', 'security'];
      for (const family of FAMILIES) {
        const accept = ['-s', POD_NETWORK[family], '-j', 'ACCEPT'];
        await lab.node.must(binary(mode, family, ''), [...security, '-I', 'FORWARD', '1', ...accept]);
      }
      try {
        expect(await lab.measureLoop('ipv4', 2)).toBeGreaterThan(40);
        const observed = await backend.observe();
        expect(observed.problems).toEqual([
          'ipv4: jump to ROUTE-CONTROLLER is at position 2 of security FORWARD',
          'ipv6: jump to ROUTE-CONTROLLER is at position 2 of security FORWARD',
        ]);
        const countersBefore = observed.ipv4.counters?.packets ?? 0;
        const repaired = await backend.apply(serviceCidrs);
        expect(repaired).toMatchObject({ changed: true, writes: 2 });
        expect(repaired.summary).toMatch(/replace 1 jump with one at position 1 of security FORWARD/);
        for (const family of FAMILIES) {
          expect((await forwardRules(lab.node, mode, family))[0]).toBe(OUR_JUMP);
          expect(await lab.measureLoop(family, 10)).toBe(0);
        }
        // Only the jump moved: the rules of our chain kept counting.
        expect((await backend.observe()).ipv4.counters?.packets ?? 0).toBeGreaterThanOrEqual(countersBefore + 10);
      } finally {
        for (const family of FAMILIES) {
          const accept = ['-s', POD_NETWORK[family], '-j', 'ACCEPT'];
          await lab.node.must(binary(mode, family, ''), [...security, '-D', 'FORWARD', ...accept]);
        }
      }
    });

    it('reject moves to filter FORWARD (REJECT works in filter only), answers "administratively prohibited" and keeps the loop closed', async () => {
      await backend.apply(desired([LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6], 'reject'));
      expect(await backend.observe()).toMatchObject({ action: 'reject', problems: [] });
      for (const family of FAMILIES) {
        expect(await forwardRules(lab.node, mode, family)).toEqual([]);
        expect((await forwardRules(lab.node, mode, family, 'filter'))[0]).toMatch(/\(filter\)" -j ROUTE-CONTROLLER$/);
        expect(await lab.measureLoop(family, 5)).toBe(0);
        const ping = await lab.pod.exec('ping', ['-n', '-c', '1', '-W', '1', LAB.staleService[family]]);
        expect(`${ping.stdout}${ping.stderr}`).toMatch(
          family === 'ipv4' ? /Packet filtered/ : /Administratively prohibited/,
        );
      }
      await backend.apply(serviceCidrs);
      expect(await backend.observe()).toMatchObject({ action: 'drop', problems: [] });
      for (const family of FAMILIES) {
        expect(await forwardRules(lab.node, mode, family, 'filter')).toEqual(filterBefore[family]);
      }
    });

    it("cleanup restores the node's firewall byte for byte, but for the empty security table iptables keeps, and the loop is back", async () => {
      expect((await backend.cleanup()).removed).toBe(true);
      const after = await firewallWithoutCounters(lab);
      expect(before).not.toMatch(/security/);
      expect(after).toMatch(/security/);
      expect(withoutEmptySecurityTables(after)).toBe(before);
      expect(await lab.measureLoop('ipv4', 2)).toBeGreaterThan(40);
      expect(await lab.measureLoop('ipv6', 2)).toBeGreaterThan(40);
      expect((await backend.cleanup()).removed).toBe(false);
    });
  });
}
