import { IptablesBackend } from '@route-controller/backend-iptables';
import { NftBackend } from '@route-controller/backend-nft';
import type { FirewallBackend } from '@route-controller/core';
import { type AgentProcess, httpGet, LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { withoutEmptySecurityTables } from '../src/firewall-compare.js';
import { describeKernel } from '../src/prerequisites.js';

const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;

interface Case {
  readonly requested: 'auto' | 'nft' | 'iptables-nft' | 'iptables-legacy';
  readonly expected: 'nft' | 'iptables-nft' | 'iptables-legacy';
  /** A pod ACCEPT in filter FORWARD, in the iptables backend's flavour: it must not let stale packets past us. */
  readonly podAccept?: 'iptables-nft' | 'iptables-legacy';
}

const cases: Case[] = [
  { requested: 'auto', expected: 'nft' },
  { requested: 'nft', expected: 'nft' },
  { requested: 'iptables-nft', expected: 'iptables-nft', podAccept: 'iptables-nft' },
  { requested: 'iptables-legacy', expected: 'iptables-legacy', podAccept: 'iptables-legacy' },
];

/** An independent view of the kernel, through the backend library (not the agent process). */
function backendFor(name: Case['expected'], lab: LoopLab): FirewallBackend {
  if (name === 'nft') return new NftBackend({ runner: lab.node.runner });
  return new IptablesBackend({ mode: name === 'iptables-nft' ? 'nft' : 'legacy', runner: lab.node.runner });
}

interface Drift {
  readonly what: string;
  readonly file: string;
  readonly args: readonly string[];
  /** Puts back what the disturbance removed that is not ours (the pod ACCEPT), or removes what it added. */
  readonly undo?: readonly string[];
}

/** Our chain and jump live in the security table: its FORWARD is the one an ACCEPT can undo. */
const iptablesDrifts = (bin: string): Drift[] => [
  { what: 'security FORWARD flushed', file: bin, args: ['-w', '-t', 'security', '-F', 'FORWARD'] },
  { what: 'our chain flushed', file: bin, args: ['-w', '-t', 'security', '-F', 'ROUTE-CONTROLLER'] },
  {
    what: 'an ACCEPT inserted above our jump',
    file: bin,
    args: ['-w', '-t', 'security', '-I', 'FORWARD', '1', '-j', 'ACCEPT'],
    undo: ['-w', '-t', 'security', '-D', 'FORWARD', '-j', 'ACCEPT'],
  },
];

/** Drift a third party could cause, per backend, as shell-free commands in the node. */
const drifts: Record<Case['expected'], Drift[]> = {
  nft: [
    { what: 'our table deleted', file: 'nft', args: ['delete', 'table', 'inet', 'route-controller'] },
    { what: 'our chain flushed', file: 'nft', args: ['flush', 'chain', 'inet', 'route-controller', 'forward'] },
    { what: 'our set flushed', file: 'nft', args: ['flush', 'set', 'inet', 'route-controller', 'service-cidrs-v4'] },
  ],
  'iptables-nft': iptablesDrifts('iptables-nft'),
  'iptables-legacy': iptablesDrifts('iptables-legacy'),
};

describeKernel('agent in the loop lab, per backend', () => {
  for (const testCase of cases) {
    describe(`FIREWALL_BACKEND=${testCase.requested}`, () => {
      let lab: LoopLab;
      let agent: AgentProcess;
      let firewallBefore: string;
      let loopBefore: number;

      // One agent for the whole sequence below, so it is the suite's: started here, stopped by the
      // SIGTERM test, or here at the end should that test not get to it.
      beforeAll(async () => {
        lab = await LoopLab.create(testCase.podAccept ? { podAcceptRule: testCase.podAccept } : {});
        firewallBefore = await lab.nodeFirewall();
        loopBefore = await lab.measureLoop('ipv4', 4);
        agent = startAgent(lab.node, {
          SERVICE_CIDRS,
          FIREWALL_BACKEND: testCase.requested,
          RESYNC_INTERVAL: '1s',
          LISTEN_ADDRESS: '127.0.0.1:9771',
          METRICS_LISTEN_ADDRESS: '127.0.0.1:9772',
        });
      });
      afterAll(async () => {
        await agent?.stop('SIGKILL');
        await lab?.destroy();
      });

      it('ends the IPv4 and IPv6 loops at start, without waiting for a resync, and says why it chose the backend', async () => {
        expect(loopBefore).toBeGreaterThan(100);
        const applied = await agent.waitForMessage('rules applied');
        // A bound only a hang or a wait for the resync breaks; start-up speed is measured by `pnpm bench`.
        expect(agent.elapsedAt(applied)).toBeLessThan(10_000);
        const summary = await agent.waitForSummary();
        expect(summary.backend).toBe(testCase.expected);
        expect(summary.reason).toMatch(/.+/);
        expect(await lab.measureLoop('ipv4', 10)).toBe(0);
        expect(await lab.measureLoop('ipv6', 10)).toBe(0);
        expect(agent.logs.some((line) => line.msg.includes('Kubernetes client'))).toBe(false);
      });

      it('leaves the live Service and the node itself untouched', async () => {
        for (const family of ['ipv4', 'ipv6'] as const) {
          expect(await lab.pingLiveServiceFromPod(family)).toEqual({ sent: 3, received: 3 });
          expect(await lab.pingLiveServiceFromNode(family)).toEqual({ sent: 3, received: 3 });
        }
      });

      it('is ready and exposes the kernel drop counters as metrics', async () => {
        // Drops of its own, so that this test does not rest on the pings of an earlier one.
        expect(await lab.measureLoop('ipv4', 10)).toBe(0);
        expect((await httpGet(lab.node, 'http://127.0.0.1:9771/healthz')).status).toBe(200);
        const ready = await httpGet(lab.node, 'http://127.0.0.1:9771/readyz');
        expect(ready.status).toBe(200);
        expect(ready.body).toContain('in step');
        const metrics = (await httpGet(lab.node, 'http://127.0.0.1:9772/metrics')).body;
        expect(metrics).toContain(`route_controller_backend_info{backend="${testCase.expected}"} 1`);
        expect(metrics).toMatch(/route_controller_service_cidrs\{family="ipv4"\} 1/);
        const blocked = /route_controller_blocked_packets_total\{family="ipv4"\} (\d+)/.exec(metrics);
        expect(Number(blocked?.[1])).toBeGreaterThanOrEqual(10);
      });

      for (const { what, file, args, undo } of drifts[testCase.expected]) {
        it(`repairs drift within the resync interval: ${what}`, async () => {
          const from = agent.logs.length;
          await lab.node.must(file, args);
          await agent.waitForMessage('drift repaired', 2500, from);
          expect(await lab.measureLoop('ipv4', 4)).toBe(0);
          const observed = await backendFor(testCase.expected, lab).observe();
          expect(observed.problems).toEqual([]);
          if (undo) await lab.node.must(file, undo);
        });
      }

      it('keeps the rules on SIGTERM and exits by itself, before its 5 s stop deadline', async () => {
        const exit = await agent.stop('SIGTERM');
        expect(exit.exitCode).toBe(0);
        expect(agent.logs.some((line) => line.msg === 'stop deadline passed')).toBe(false);
        expect(await lab.measureLoop('ipv4', 4)).toBe(0);
        expect((await backendFor(testCase.expected, lab).observe()).present).toBe(true);
      });

      it('`route-controller cleanup` restores the node firewall exactly (but for the empty security table iptables keeps)', async () => {
        const result = await agentCli(lab.node, ['cleanup']);
        expect(result.exitCode).toBe(0);
        const line = result.stdout.split('\n').find((l) => l.startsWith(`${testCase.expected}: `));
        expect(line).toMatch(/remove/);
        expect(withoutEmptySecurityTables(await lab.nodeFirewall()).split('\n')).toEqual(firewallBefore.split('\n'));
        expect(await lab.measureLoop('ipv4', 2)).toBeGreaterThan(40);
      });
    });
  }
});
