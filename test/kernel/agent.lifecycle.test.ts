import { IptablesBackend } from '@route-controller/backend-iptables';
import { NftBackend } from '@route-controller/backend-nft';
import { LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { describeKernel } from '../src/prerequisites.js';

const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeKernel('agent lifecycle in the loop lab', () => {
  let lab: LoopLab;
  let clean: string;
  const backends = () => ({
    nft: new NftBackend({ runner: lab.node.runner }),
    'iptables-nft': new IptablesBackend({ mode: 'nft', runner: lab.node.runner }),
    'iptables-legacy': new IptablesBackend({ mode: 'legacy', runner: lab.node.runner }),
  });
  const installedIn = async () => {
    const found: string[] = [];
    for (const [name, backend] of Object.entries(backends())) if ((await backend.observe()).present) found.push(name);
    return found;
  };

  beforeAll(async () => {
    lab = await LoopLab.create();
    clean = await lab.nodeFirewall();
  });
  afterAll(async () => {
    await lab?.destroy();
  });
  beforeEach(async () => {
    // Every test starts from a node with nothing of ours.
    await agentCli(lab.node, ['cleanup']);
    expect(await lab.nodeFirewall()).toBe(clean);
  });

  it('refuses an invalid setting before installing anything, naming the variable, value and choices', async () => {
    const agent = startAgent(lab.node, { SERVICE_CIDRS, FIREWALL_BACKEND: 'pf' });
    const exit = await agent.exited;
    expect(exit.exitCode).toBe(2);
    const stderr = agent.stderr.join('');
    expect(stderr).toContain('ERR_RC_INVALID_CONFIG');
    expect(stderr).toContain('FIREWALL_BACKEND="pf"');
    expect(stderr).toContain('auto, nft, iptables-nft, iptables-legacy');
    expect(await lab.nodeFirewall()).toBe(clean);

    const bad = startAgent(lab.node, { SERVICE_CIDRS: '10.96.0.0/12;fd00::/108' });
    expect((await bad.exited).exitCode).toBe(2);
    expect(bad.stderr.join('')).toContain('Separate entries with commas');
    expect(await lab.nodeFirewall()).toBe(clean);
  });

  it("refuses a Service CIDR containing the node's own address or gateway, installing nothing", async () => {
    const agent = startAgent(lab.node, { SERVICE_CIDRS: `${LAB.serviceCidr.ipv4},172.18.0.0/16` });
    expect((await agent.exited).exitCode).toBe(1);
    const fatal = agent.logs.find((line) => line.level === 'fatal');
    expect(fatal?.code).toBe('ERR_RC_UNSAFE_CIDR');
    expect(fatal?.msg).toContain('172.18.0.0/16 contains 172.18.0.2, an address of eth0');
    expect(await lab.nodeFirewall()).toBe(clean);
  });

  it('keeps running without rules, and says how to fix it, when no source has CIDRs', async () => {
    const agent = startAgent(lab.node, { KUBECONFIG: '/nonexistent/kubeconfig', RESYNC_INTERVAL: '1s' });
    try {
      const warning = await agent.waitForLog((line) => line.level === 'warn' && /SERVICE_CIDRS/.test(line.msg), 15_000);
      expect(warning.msg).toMatch(/routeController\.serviceCIDRs/);
      await sleep(1500);
      expect(agent.logs.some((line) => line.level === 'fatal')).toBe(false);
      expect(await lab.nodeFirewall()).toBe(clean);
    } finally {
      await agent.stop();
    }
  });

  it('CLEANUP_ON_EXIT=true removes the rules on SIGTERM', async () => {
    const agent = startAgent(lab.node, { SERVICE_CIDRS, CLEANUP_ON_EXIT: 'true' });
    await agent.waitForMessage('rules applied');
    expect(await lab.measureLoop('ipv4', 3)).toBe(0);
    expect((await agent.stop('SIGTERM')).exitCode).toBe(0);
    expect(await lab.nodeFirewall()).toBe(clean);
  });

  it('converges after 10 SIGKILLs at random moments to exactly the state a clean start gives', async () => {
    // The reference: what a clean start installs.
    const reference = startAgent(lab.node, { SERVICE_CIDRS });
    await reference.waitForMessage('rules applied');
    await reference.stop('SIGTERM');
    const expected = await lab.nodeFirewall();
    await agentCli(lab.node, ['cleanup']);

    // Kill agents at random points of their start-up and apply, alternating the CIDR set so some
    // deaths land in the middle of a transaction that changes something.
    for (let i = 0; i < 10; i += 1) {
      const cidrs = i % 2 === 0 ? SERVICE_CIDRS : `${SERVICE_CIDRS},10.100.0.0/16,fd00:100::/112`;
      const agent = startAgent(lab.node, { SERVICE_CIDRS: cidrs });
      await sleep(Math.floor(Math.random() * 400));
      await agent.stop('SIGKILL');
    }
    const agent = startAgent(lab.node, { SERVICE_CIDRS });
    await agent.waitForLog((line) => /rules applied|already in step/.test(line.msg));
    await agent.stop('SIGTERM');
    expect(await lab.nodeFirewall()).toBe(expected);
    expect(await lab.measureLoop('ipv4', 3)).toBe(0);
  });

  it('a switch of backend between runs leaves no leftovers in the old one', async () => {
    const first = startAgent(lab.node, { SERVICE_CIDRS, FIREWALL_BACKEND: 'iptables-legacy' });
    await first.waitForMessage('rules applied');
    // The lab's kube-proxy writes with iptables-nft: forcing legacy is allowed, with a warning.
    const mismatch = await first.waitForMessage("this node's kube-proxy/kubelet use iptables-nft");
    expect(mismatch.level).toBe('warn');
    await first.stop('SIGTERM');
    expect(await installedIn()).toEqual(['iptables-legacy']);

    const second = startAgent(lab.node, { SERVICE_CIDRS, FIREWALL_BACKEND: 'iptables-nft' });
    await second.waitForMessage('removed leftovers of an earlier run from iptables-legacy');
    await second.stop('SIGTERM');
    expect(await installedIn()).toEqual(['iptables-nft']);

    const third = startAgent(lab.node, { SERVICE_CIDRS });
    await third.waitForMessage('removed leftovers of an earlier run from iptables-nft');
    await third.stop('SIGTERM');
    expect(await installedIn()).toEqual(['nft']);
    expect(await lab.measureLoop('ipv4', 3)).toBe(0);
  });
});
