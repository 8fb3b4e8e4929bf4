import { IptablesBackend } from '@route-controller/backend-iptables';
import { desiredState, ErrorCodes, parseCidrList } from '@route-controller/core';
import { codedRejection } from '@route-controller/core/testing';
import { httpGet, LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { makeFilterUnreadable } from '../src/iptables-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;
const LISTEN_ADDRESS = '127.0.0.1:9771';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A node whose ip and ip6 filter tables hold a native nft rule iptables-nft cannot translate (a
 * user's nftables.conf, firewalld): iptables-nft-save prints one comment and exits 0, and
 * iptables-nft-restore would write anyway. Our iptables-nft rules were installed before that, as
 * on a node where the native rule came later: they are there, and iptables-nft cannot see them.
 */
describeKernel('agent on a node whose filter table iptables-nft cannot read', () => {
  let lab: LoopLab;
  /** The whole ruleset as found, without counters: what every test must leave it. */
  let found: string;
  const ruleset = async () => (await lab.node.must('nft', ['-s', 'list', 'ruleset'])).stdout;
  const jumps = (text: string) => text.match(/jump ROUTE-CONTROLLER/g)?.length ?? 0;

  beforeAll(async () => {
    lab = await LoopLab.create({ podAcceptRule: 'iptables-nft' });
    await new IptablesBackend({ mode: 'nft', runner: lab.node.runner }).apply(
      desiredState(parseCidrList(SERVICE_CIDRS).cidrs),
    );
    await makeFilterUnreadable(lab.node, 'ipv4');
    await makeFilterUnreadable(lab.node, 'ipv6');
    found = await ruleset();
    expect(jumps(found)).toBe(2);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('the backend refuses to read or write there, with ERR_RC_FIREWALL_UNREADABLE', async () => {
    const backend = new IptablesBackend({ mode: 'nft', runner: lab.node.runner });
    const error = await codedRejection(backend.apply(desiredState(parseCidrList(SERVICE_CIDRS).cidrs)));
    expect(error.code).toBe(ErrorCodes.FirewallUnreadable);
    expect(error.message).toContain("# Table `filter' is incompatible, use 'nft' tool.");
    expect(error.hint).toMatch(/FIREWALL_BACKEND=nft/);
    expect(await ruleset()).toBe(found);
  });

  it('probe reports iptables-nft unavailable, naming the cause, and would choose nft', async () => {
    const result = await agentCli(lab.node, ['probe', '--json']);
    expect(result.exitCode).toBe(0);
    const report = JSON.parse(result.stdout) as {
      backend: string;
      backends: Record<string, { available: boolean; reason: string; failure?: string }>;
      changeEvents: Record<string, boolean>;
    };
    expect(report.backend).toBe('nft');
    expect(report.backends['iptables-nft']).toMatchObject({
      available: false,
      failure: ErrorCodes.FirewallUnreadable,
      reason: expect.stringMatching(
        /cannot show table ip filter in full: it printed "# Table `filter' is incompatible/,
      ),
    });
    expect(report.changeEvents).toEqual({ nft: true, 'iptables-nft': true, 'iptables-legacy': false });
  });

  it('forced iptables-nft: never writes, not ready with the reason, and says why in the log', async () => {
    const agent = startAgent(lab.node, {
      SERVICE_CIDRS,
      FIREWALL_BACKEND: 'iptables-nft',
      RESYNC_INTERVAL: '1s',
      LISTEN_ADDRESS,
    });
    try {
      const failed = await agent.waitForLog(
        (line) => line.level === 'error' && line.code === ErrorCodes.FirewallUnreadable,
      );
      expect(failed.msg).toBe('apply failed');
      expect(failed.backend).toBe('iptables-nft');
      expect(JSON.stringify(failed.err)).toMatch(/incompatible/);
      expect(failed.hint).toMatch(/FIREWALL_BACKEND=nft/);
      // Several resyncs and retries later, nothing has stacked.
      await sleep(3_500);
      const ready = await httpGet(lab.node, `http://${LISTEN_ADDRESS}/readyz`);
      expect(ready.status).toBe(503);
      expect(ready.body).toMatch(/^apply with iptables-nft failed: ERR_RC_FIREWALL_UNREADABLE: .*incompatible/);
      expect(await ruleset()).toBe(found);
      expect(agent.logs.some((line) => /rules applied|drift repaired/.test(line.msg))).toBe(false);
    } finally {
      await agent.stop('SIGTERM');
    }
    expect(await ruleset()).toBe(found);
  });

  it('status says the tables cannot be read, instead of "nothing installed"', async () => {
    const result = await agentCli(lab.node, ['status'], { SERVICE_CIDRS });
    expect(result.stdout).toMatch(
      /^iptables-nft: cannot read its tables here, so rules of ours there would go unseen \(.*incompatible.*\)$/m,
    );
    expect(await ruleset()).toBe(found);
  });

  it('cleanup leaves the node exactly as it found it, and says so with a failure', async () => {
    const result = await agentCli(lab.node, ['cleanup']);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/^iptables-nft: nothing removed, the firewall was left as it is: /m);
    expect(result.stderr).toMatch(/hint: route-controller writes nothing into a table it cannot read/);
    expect(await ruleset()).toBe(found);
  });

  it('auto chooses nft there, ends the loop, and leaves the filter tables alone', async () => {
    const filters = async () =>
      (await lab.node.must('nft', ['-s', 'list', 'table', 'ip', 'filter'])).stdout +
      (await lab.node.must('nft', ['-s', 'list', 'table', 'ip6', 'filter'])).stdout;
    const before = await filters();
    const agent = startAgent(lab.node, { SERVICE_CIDRS, RESYNC_INTERVAL: '1s', LISTEN_ADDRESS });
    try {
      await agent.waitUntilReady(15_000);
      const summary = await agent.waitForSummary();
      expect(summary.backend).toBe('nft');
      expect(summary.reason).toMatch(/native nftables works here/);
      expect(await lab.measureLoop('ipv4', 5)).toBe(0);
      expect(await lab.measureLoop('ipv6', 5)).toBe(0);
      await sleep(1_500);
      expect(await filters()).toBe(before);
    } finally {
      await agent.stop('SIGTERM');
    }
    // Its own table removed again, the node is as found (the iptables-nft part still refused).
    expect((await agentCli(lab.node, ['cleanup'])).exitCode).toBe(1);
    expect(await ruleset()).toBe(found);
  });
});
