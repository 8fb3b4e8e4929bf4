import { IptablesBackend } from '@route-controller/backend-iptables';
import { NftBackend, renderReplaceTransaction } from '@route-controller/backend-nft';
import { desiredState, type FirewallBackend, type IpFamily, parseCidrList } from '@route-controller/core';
import { type AgentProcess, LAB, LoopLab, type LoopLabOptions, ping } from '@route-controller/lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { nodeRulesets, withoutEmptySecurityTables } from '../src/firewall-compare.js';
import { binary, forwardRules, restoreInto } from '../src/iptables-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * Issue 20, point 3: started over route-controller 0.1.0's rules (nft: our table with its base chain
 * at priority filter; iptables: our chain in filter, jumped to from position 1 of filter FORWARD),
 * the agent takes them over in its first apply, with no moment where stale packets loop, and
 * `cleanup` then leaves nothing.
 */

const FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6'];
const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;
const DESIRED = desiredState(parseCidrList(SERVICE_CIDRS).cidrs);

type Backend = 'nft' | 'iptables-nft' | 'iptables-legacy';

/** 0.1.0's nft transaction: today's, but with the base chain at priority filter (0). */
function oldNftDocument(): string {
  const document = renderReplaceTransaction(DESIRED);
  return JSON.stringify(document).replace('"hook":"forward","prio":20', '"hook":"forward","prio":0');
}

/** 0.1.0's iptables layout for one family. */
const oldIptablesPayload = (family: IpFamily) => `*filter
:ROUTE-CONTROLLER - [0:0]
-A ROUTE-CONTROLLER -d ${LAB.serviceCidr[family]} -m comment --comment "route-controller: Service CIDR" -j DROP
-I FORWARD 1 -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER
COMMIT
`;

const cases: { backend: Backend; lab: LoopLabOptions }[] = [
  { backend: 'nft', lab: { kubeProxy: 'iptables-nft', podAcceptRule: 'iptables-nft' } },
  { backend: 'iptables-nft', lab: { kubeProxy: 'iptables-nft', podAcceptRule: 'iptables-nft' } },
  { backend: 'iptables-legacy', lab: { kubeProxy: 'iptables-legacy', podAcceptRule: 'iptables-legacy' } },
];

function backendFor(name: Backend, lab: LoopLab): FirewallBackend {
  if (name === 'nft') return new NftBackend({ runner: lab.node.runner });
  return new IptablesBackend({ mode: name === 'iptables-nft' ? 'nft' : 'legacy', runner: lab.node.runner });
}

interface StatusJson {
  backends: { backend: string; installed?: { present: boolean; problems: string[] } }[];
}

describeKernel("agent: an upgrade over 0.1.0's rules", () => {
  for (const { backend, lab: labOptions } of cases) {
    describe(`FIREWALL_BACKEND=${backend}`, () => {
      let lab: LoopLab;
      let agent: AgentProcess | undefined;
      let rulesBefore: string;

      beforeAll(async () => {
        lab = await LoopLab.create(labOptions);
        rulesBefore = await nodeRulesets(lab.node);
        if (backend === 'nft') {
          await lab.node.must('nft', ['-j', oldNftDocument()]);
        } else {
          const mode = backend === 'iptables-nft' ? 'nft' : 'legacy';
          for (const family of FAMILIES) await restoreInto(lab.node, mode, family, oldIptablesPayload(family));
        }
      });
      afterAll(async () => {
        await agent?.stop('SIGKILL');
        await lab?.destroy();
      });

      it("0.1.0's rules end the loop but turn kube-proxy's refusal into a hang", async () => {
        for (const family of FAMILIES) {
          expect(await lab.measureLoop(family, 4)).toBe(0);
          expect(await lab.connect(family, { timeoutMs: 1500 }), family).toMatchObject({ outcome: 'timeout' });
        }
      });

      it('status, before the new agent runs, shows the old layout as drift', async () => {
        const result = await agentCli(lab.node, ['status', '--json'], { SERVICE_CIDRS });
        expect(result.exitCode, result.stderr).toBe(0);
        const status = JSON.parse(result.stdout) as StatusJson;
        const ours = status.backends.find((entry) => entry.backend === backend);
        expect(ours?.installed?.present).toBe(true);
        expect(ours?.installed?.problems.length).toBeGreaterThan(0);
        for (const problem of ours?.installed?.problems ?? []) expect(problem).toMatch(/0\.1\.0/);
      });

      it('the first apply takes them over with no moment where a stale packet loops, and the refusal is back', async () => {
        const loopsBefore = await lab.loopPackets('ipv4');
        // A ping every 2 ms to a stale ClusterIP while the agent starts: a gap between removing the
        // old rules and installing the new ones would let some of them loop.
        const flood = ping(lab.pod, LAB.staleService.ipv4, {
          count: 1500,
          intervalSeconds: 0.002,
          replyTimeoutSeconds: 0.2,
        });
        agent = startAgent(lab.node, { SERVICE_CIDRS, FIREWALL_BACKEND: backend, RESYNC_INTERVAL: '1s' });
        const applied = await agent.waitForMessage('rules applied', 15_000);
        expect((await flood).sent).toBe(1500);
        expect(await lab.loopPackets('ipv4')).toBe(loopsBefore);
        // nft: one atomic transaction; iptables: one restore per family, security before filter.
        expect(applied.writes).toBe(backend === 'nft' ? 1 : 2);
        expect(String(applied.summary)).toMatch(
          backend === 'nft'
            ? /priority filter \(0\).*0\.1\.0/
            : /remove chain ROUTE-CONTROLLER from filter \(route-controller 0\.1\.0's\)/,
        );
        for (const family of FAMILIES) {
          expect(await lab.connect(family), family).toMatchObject({ outcome: 'refused', code: 'ECONNREFUSED' });
          expect(await lab.measureLoop(family, 4)).toBe(0);
        }
        expect((await backendFor(backend, lab).observe()).problems).toEqual([]);
        if (backend === 'nft') {
          const listing = (await lab.node.must('nft', ['list', 'chain', 'inet', 'route-controller', 'forward'])).stdout;
          expect(listing).toContain('type filter hook forward priority 20; policy accept;');
        } else {
          const mode = backend === 'iptables-nft' ? 'nft' : 'legacy';
          for (const family of FAMILIES) {
            const filter = (await lab.node.must(binary(mode, family, 'save'), ['-t', 'filter'])).stdout;
            expect(filter).not.toContain('ROUTE-CONTROLLER');
            expect(await forwardRules(lab.node, mode, family)).toHaveLength(1);
          }
        }
        // The rules stay (no gap in a rolling update); the next test removes them.
        expect((await agent.stop('SIGTERM')).exitCode).toBe(0);
      });

      it('cleanup then leaves nothing of either layout', async () => {
        const result = await agentCli(lab.node, ['cleanup']);
        expect(result.exitCode, result.stderr).toBe(0);
        const after = await nodeRulesets(lab.node);
        expect(after).not.toContain('ROUTE-CONTROLLER');
        expect(after).not.toContain('route-controller');
        expect(backend === 'nft' ? after : withoutEmptySecurityTables(after)).toBe(rulesBefore);
      });
    });
  }
});
