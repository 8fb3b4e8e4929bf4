import { IptablesBackend, type IptablesMode } from '@route-controller/backend-iptables';
import type { IpFamily } from '@route-controller/core';
import { desired } from '@route-controller/core/testing';
import { LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
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

// Proof with packets: kube-proxy and an ACCEPT for pod traffic at the top of FORWARD, both in the
// mode's flavour, as on a real node; the backend must still end the loop in both families.
for (const mode of ['legacy', 'nft'] as const satisfies readonly IptablesMode[]) {
  describeKernel(`iptables-${mode} backend in the loop lab`, () => {
    let lab: LoopLab;
    let backend: IptablesBackend;
    let before: string;
    const serviceCidrs = desired([LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6]);

    beforeAll(async () => {
      lab = await LoopLab.create({ kubeProxy: `iptables-${mode}`, podAcceptRule: `iptables-${mode}` });
      backend = new IptablesBackend({ mode, runner: lab.node.runner });
      before = await firewallWithoutCounters(lab);
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('without us, the pod ACCEPT lets stale-ClusterIP packets loop in both families', async () => {
      for (const family of FAMILIES) expect(await lab.measureLoop(family, 10)).toBeGreaterThan(200);
    });

    it('probe finds the mode usable for both families', async () => {
      const availability = await backend.probe();
      expect(availability.available, availability.reason).toBe(true);
      expect(backend.capabilities.families).toEqual(['ipv4', 'ipv6']);
    });

    it('apply puts our jump above the pod ACCEPT and ends both loops', async () => {
      const result = await backend.apply(serviceCidrs);
      expect(result).toMatchObject({ changed: true, writes: 2 });
      for (const family of FAMILIES) {
        const forward = await forwardRules(lab.node, mode, family);
        expect(forward[0]).toBe(OUR_JUMP);
        expect(forward[1]).toBe(`-A FORWARD -s ${POD_NETWORK[family]} -j ACCEPT`);
        expect(await lab.measureLoop(family, 10)).toBe(0);
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

    it('an ACCEPT inserted above our jump reopens the loop; the next apply moves the jump back to position 1', async () => {
      for (const family of FAMILIES) {
        await lab.node.must(binary(mode, family, ''), [
          '-w',
          '-I',
          'FORWARD',
          '1',
          '-s',
          POD_NETWORK[family],
          '-j',
          'ACCEPT',
        ]);
      }
      try {
        expect(await lab.measureLoop('ipv4', 2)).toBeGreaterThan(40);
        const observed = await backend.observe();
        expect(observed.problems).toEqual([
          'ipv4: jump to ROUTE-CONTROLLER is at position 2 of FORWARD',
          'ipv6: jump to ROUTE-CONTROLLER is at position 2 of FORWARD',
        ]);
        const countersBefore = observed.ipv4.counters?.packets ?? 0;
        const repaired = await backend.apply(serviceCidrs);
        expect(repaired).toMatchObject({ changed: true, writes: 2 });
        expect(repaired.summary).toMatch(/replace 1 jump with one at position 1 of FORWARD/);
        for (const family of FAMILIES) {
          expect((await forwardRules(lab.node, mode, family))[0]).toBe(OUR_JUMP);
          expect(await lab.measureLoop(family, 10)).toBe(0);
        }
        // Only the jump moved: the rules of our chain kept counting.
        expect((await backend.observe()).ipv4.counters?.packets ?? 0).toBeGreaterThanOrEqual(countersBefore + 10);
      } finally {
        for (const family of FAMILIES) {
          await lab.node.must(binary(mode, family, ''), [
            '-w',
            '-D',
            'FORWARD',
            '-s',
            POD_NETWORK[family],
            '-j',
            'ACCEPT',
          ]);
        }
      }
    });

    it('reject answers the pod with "administratively prohibited" and keeps the loop closed', async () => {
      await backend.apply(desired([LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6], 'reject'));
      expect((await backend.observe()).action).toBe('reject');
      for (const family of FAMILIES) {
        expect(await lab.measureLoop(family, 5)).toBe(0);
        const ping = await lab.pod.exec('ping', ['-n', '-c', '1', '-W', '1', LAB.staleService[family]]);
        expect(`${ping.stdout}${ping.stderr}`).toMatch(
          family === 'ipv4' ? /Packet filtered/ : /Administratively prohibited/,
        );
      }
      await backend.apply(serviceCidrs);
    });

    it("cleanup restores the node's firewall exactly, and the loop is back", async () => {
      expect((await backend.cleanup()).removed).toBe(true);
      expect(await firewallWithoutCounters(lab)).toBe(before);
      expect(await lab.measureLoop('ipv4', 2)).toBeGreaterThan(40);
      expect(await lab.measureLoop('ipv6', 2)).toBeGreaterThan(40);
      expect((await backend.cleanup()).removed).toBe(false);
    });
  });
}
