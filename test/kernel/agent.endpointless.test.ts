import type { IpFamily } from '@route-controller/core';
import { type AgentProcess, type ConnectResult, LAB, LoopLab, type LoopLabOptions } from '@route-controller/lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { nodeRulesets, withoutEmptySecurityTables } from '../src/firewall-compare.js';
import { kernelRecords } from '../src/nft-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * Issue 20: a Service with no ready endpoints must refuse at once with the agent as without it, on
 * every backend and with auto. The loop lab's node carries kube-proxy's REJECT for such a Service
 * (LAB.endpointlessService) and a CNI-like ACCEPT for pod traffic below it; the agent must still end
 * every stale loop, never call the endpoint-less address stale, and leave nothing behind.
 */

const FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6'];
const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;

interface Case {
  readonly requested: 'auto' | 'nft' | 'iptables-nft' | 'iptables-legacy';
  readonly expected: 'nft' | 'iptables-nft' | 'iptables-legacy';
  readonly lab: LoopLabOptions;
}

const cases: Case[] = [
  // auto picks nft here; kube-proxy and the CNI on iptables-nft, as on a kind node.
  { requested: 'auto', expected: 'nft', lab: { kubeProxy: 'iptables-nft', podAcceptRule: 'iptables-nft' } },
  // kube-proxy in its nftables mode: its REJECT in a chain of its own, before filter.
  { requested: 'nft', expected: 'nft', lab: { kubeProxy: 'nft', podAcceptRule: 'iptables-nft' } },
  {
    requested: 'iptables-nft',
    expected: 'iptables-nft',
    lab: { kubeProxy: 'iptables-nft', podAcceptRule: 'iptables-nft' },
  },
  {
    requested: 'iptables-legacy',
    expected: 'iptables-legacy',
    lab: { kubeProxy: 'iptables-legacy', podAcceptRule: 'iptables-legacy' },
  },
];

interface StatusJson {
  staleDestinations: { address: string }[];
  backends: { backend: string; installed?: { present: boolean } }[];
}

const shown = (result: ConnectResult) =>
  `${result.outcome}${result.code ? ` ${result.code}` : ''} in ${result.ms.toFixed(1)} ms`;

describeKernel('agent and a Service without endpoints, per backend', () => {
  for (const testCase of cases) {
    describe(`FIREWALL_BACKEND=${testCase.requested}`, () => {
      let lab: LoopLab;
      let agent: AgentProcess;
      let rulesBefore: string;
      const without: Partial<Record<IpFamily, ConnectResult>> = {};
      let loopBefore = 0;

      beforeAll(async () => {
        lab = await LoopLab.create(testCase.lab);
        rulesBefore = await nodeRulesets(lab.node);
        for (const family of FAMILIES) without[family] = await lab.connect(family);
        loopBefore = await lab.measureLoop('ipv4', 4);
        agent = startAgent(lab.node, {
          SERVICE_CIDRS,
          FIREWALL_BACKEND: testCase.requested,
          RESYNC_INTERVAL: '1s',
        });
        await agent.waitForMessage('rules applied', 15_000);
      });
      afterAll(async () => {
        await agent?.stop('SIGKILL');
        await lab?.destroy();
      });

      it(`chooses ${testCase.expected}, and ends the stale loops in both families`, async () => {
        expect(loopBefore).toBeGreaterThan(80);
        expect((await agent.waitForSummary()).backend).toBe(testCase.expected);
        for (const family of FAMILIES) expect(await lab.measureLoop(family, 10)).toBe(0);
      });

      it('the endpoint-less Service refuses at once, as it does without the agent', async () => {
        for (const family of FAMILIES) {
          const before = without[family];
          const now = await lab.connect(family);
          console.log(
            `${testCase.requested} ${family}: connect to the endpoint-less Service, without the agent ${before ? shown(before) : '?'}, with it ${shown(now)}`,
          );
          expect(before).toMatchObject({ outcome: 'refused', code: 'ECONNREFUSED' });
          expect(now).toMatchObject({ outcome: 'refused', code: 'ECONNREFUSED' });
        }
      });

      if (testCase.lab.kubeProxy !== 'iptables-legacy') {
        it('still refuses at once after kube-proxy restarts and its chains are made after ours', async () => {
          // Chains of one priority run in the order they were made: a drop at priority filter would
          // now come before kube-proxy's REJECT. Ours runs after filter whatever the order.
          await lab.restartKubeProxy();
          for (const family of FAMILIES) {
            expect(await lab.connect(family), family).toMatchObject({ outcome: 'refused', code: 'ECONNREFUSED' });
            expect(await lab.measureLoop(family, 4)).toBe(0);
          }
        });
      }

      it('never calls the endpoint-less address stale: not in the log, not in status, not in the record sets', async () => {
        // Dial both: the stale ClusterIP is what the records must show, the endpoint-less one never.
        for (const family of FAMILIES) {
          for (let i = 0; i < 3; i += 1) expect((await lab.connect(family)).outcome).toBe('refused');
          await lab.dial('pod', LAB.staleService[family], 3);
        }
        const status = async () => {
          const result = await agentCli(lab.node, ['status', '--json'], { SERVICE_CIDRS });
          expect(result.exitCode, result.stderr).toBe(0);
          return JSON.parse(result.stdout) as StatusJson;
        };
        if (testCase.expected === 'nft') {
          // The records do work: the stale ClusterIP shows up, in status and in the log.
          await expect
            .poll(async () => (await status()).staleDestinations.map((d) => d.address), { timeout: 15_000 })
            .toContain(LAB.staleService.ipv4);
          await agent.waitForLog((line) => line.destination === LAB.staleService.ipv4, 15_000);
          const recorded = (await kernelRecords(lab.node)).map((record) => record.destination);
          expect(recorded).not.toContain(LAB.endpointlessService.ipv4);
          expect(recorded).not.toContain(LAB.endpointlessService.ipv6);
        } else {
          // Give a resync or two the chance to say something it should not.
          await new Promise((resolve) => setTimeout(resolve, 2_500));
        }
        const addresses = (await status()).staleDestinations.map((d) => d.address);
        const logged = agent.logs.map((line) => JSON.stringify(line));
        for (const family of FAMILIES) {
          expect(addresses).not.toContain(LAB.endpointlessService[family]);
          expect(logged.filter((line) => line.includes(LAB.endpointlessService[family]))).toEqual([]);
        }
      });

      it("after SIGTERM, `route-controller cleanup` leaves the node's rules as they were", async () => {
        expect((await agent.stop('SIGTERM')).exitCode).toBe(0);
        const result = await agentCli(lab.node, ['cleanup']);
        expect(result.exitCode, result.stderr).toBe(0);
        const after = await nodeRulesets(lab.node);
        if (testCase.expected === 'nft') {
          // The nft backend touches nothing of iptables: byte for byte.
          expect(after).toBe(rulesBefore);
        } else {
          // The iptables backends leave the empty security table iptables made (see the README).
          expect(rulesBefore).not.toMatch(/security/);
          expect(withoutEmptySecurityTables(after)).toBe(rulesBefore);
        }
        expect(await lab.measureLoop('ipv4', 2)).toBeGreaterThan(40);
        expect((await lab.connect('ipv4')).outcome).toBe('refused');
      });
    });
  }
});
