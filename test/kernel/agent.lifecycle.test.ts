import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IptablesBackend } from '@route-controller/backend-iptables';
import { NftBackend } from '@route-controller/backend-nft';
import { httpGet, LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { listenIn } from '../src/netns-processes.js';
import { describeKernel } from '../src/prerequisites.js';

const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;
/** The endpoint inside the lab node, for tests that wait for readiness. */
const LISTEN_ADDRESS = '127.0.0.1:9771';
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
    const exit = await agent.exitWithin(15_000);
    expect(exit.exitCode).toBe(2);
    const stderr = agent.stderr.join('');
    expect(stderr).toContain('ERR_RC_INVALID_CONFIG');
    expect(stderr).toContain('FIREWALL_BACKEND="pf"');
    expect(stderr).toContain('auto, nft, iptables-nft, iptables-legacy');
    expect(await lab.nodeFirewall()).toBe(clean);

    const bad = startAgent(lab.node, { SERVICE_CIDRS: '10.96.0.0/12;fd00::/108' });
    expect((await bad.exitWithin(15_000)).exitCode).toBe(2);
    expect(bad.stderr.join('')).toContain('Separate entries with commas');
    expect(await lab.nodeFirewall()).toBe(clean);
  });

  it("refuses a Service CIDR containing the node's own address or gateway: exit 2, one plain line, nothing installed", async () => {
    const agent = startAgent(lab.node, { SERVICE_CIDRS: `${LAB.serviceCidr.ipv4},172.18.0.0/16` });
    expect((await agent.exitWithin(15_000)).exitCode).toBe(2);
    const stderr = agent.stderr.join('').trim();
    expect(stderr.split('\n')).toHaveLength(1);
    expect(stderr).toMatch(
      /^error ERR_RC_UNSAFE_CIDR: SERVICE_CIDRS="10\.96\.0\.0\/16,172\.18\.0\.0\/16" is invalid: /,
    );
    expect(stderr).toContain('172.18.0.0/16 contains 172.18.0.2, an address of eth0');
    expect(agent.logs.some((line) => line.level === 'fatal')).toBe(false);
    expect(await lab.nodeFirewall()).toBe(clean);
  });

  it('refuses an explicit KUBECONFIG that does not exist: exit 2, naming the file, never a fallback', async () => {
    const agent = startAgent(lab.node, { KUBECONFIG: '/nonexistent/kubeconfig' });
    expect((await agent.exitWithin(15_000)).exitCode).toBe(2);
    expect(agent.stderr.join('')).toMatch(
      /^error ERR_RC_INVALID_KUBECONFIG: KUBECONFIG="\/nonexistent\/kubeconfig" cannot be used: the file does not exist/,
    );
    expect(await lab.nodeFirewall()).toBe(clean);
  });

  it('refuses equal health and metrics addresses with exit 2, before anything is probed', async () => {
    const agent = startAgent(lab.node, { SERVICE_CIDRS, LISTEN_ADDRESS, METRICS_LISTEN_ADDRESS: LISTEN_ADDRESS });
    expect((await agent.exitWithin(15_000)).exitCode).toBe(2);
    expect(agent.stderr.join('')).toMatch(
      /^error ERR_RC_INVALID_CONFIG: METRICS_LISTEN_ADDRESS="127\.0\.0\.1:9771" takes the port of LISTEN_ADDRESS/,
    );
    // Not a line logged: no backend was probed, nothing was started.
    expect(agent.logs).toEqual([]);
    expect(await lab.nodeFirewall()).toBe(clean);
  });

  it('a metrics port held by another process: the failed start exits at once, leaving nothing listening, running or installed', async () => {
    const holder = await listenIn(lab.node, { host: '127.0.0.1', port: 9772 });
    try {
      const agent = startAgent(lab.node, { SERVICE_CIDRS, LISTEN_ADDRESS, METRICS_LISTEN_ADDRESS: '127.0.0.1:9772' });
      // Before the fix the agent stayed up for good, /healthz 200, SIGTERM ignored.
      const exit = await agent.exitWithin(15_000);
      const exitedAt = Date.now();
      expect(exit.exitCode).toBe(2);
      expect(agent.stderr.join('')).toContain('METRICS_LISTEN_ADDRESS=127.0.0.1:9772 cannot be used: EADDRINUSE');
      // The health listener it had opened just before is closed again, and the node socket with it.
      const serving = agent.logs.find((line) => line.msg === 'serving health endpoints');
      expect(serving).toBeDefined();
      console.log(
        `[lifecycle] failed start: exit ${exitedAt - Date.parse(serving?.time ?? '')} ms after /healthz was up`,
      );
      expect((await httpGet(lab.node, `http://${LISTEN_ADDRESS}/healthz`)).status).toBe(0);
      expect((await agentCli(lab.node, ['status', '--json'], { SERVICE_CIDRS })).stdout).toContain('"running": false');
      // Nothing of it runs in the node's namespace any more; only the port's holder does.
      expect(await lab.node.pids()).toEqual([holder.pid]);
      expect(await lab.nodeFirewall()).toBe(clean);
    } finally {
      await holder.stop();
    }
  });

  it('keeps running without rules when no source has CIDRs, not ready, and says how to fix it', async () => {
    // No Kubernetes configuration at all: not in a pod, no KUBECONFIG, no ~/.kube/config.
    const agent = startAgent(lab.node, { HOME: '/nonexistent', RESYNC_INTERVAL: '1s', LISTEN_ADDRESS });
    const warning = await agent.waitForLine('no Service CIDRs found', { level: 'warn' }, 15_000);
    expect(warning.hint).toMatch(/SERVICE_CIDRS \(Helm: routeController\.serviceCIDRs\)/);
    await sleep(1500);
    expect(agent.isRunning).toBe(true);
    const ready = await httpGet(lab.node, `http://${LISTEN_ADDRESS}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/^not protecting this node: no Service CIDRs found .*Set SERVICE_CIDRS/);
    expect(agent.logs.some((line) => line.level === 'fatal')).toBe(false);
    expect(await lab.nodeFirewall()).toBe(clean);
    await agent.stop();
    expect(agent.logs.some((line) => line.msg === 'rules kept')).toBe(false);
    expect(agent.logs.some((line) => line.msg === 'no rules of ours were installed; nothing to keep')).toBe(true);
  });

  it('SIGTERM while a command of its start-up still runs: an orderly stop all the same, exit 0', async () => {
    // A private xtables lock, held: the first apply's iptables-legacy-restore waits on it, so a
    // command is in flight when the signal comes (execa's exit handler is installed just then).
    const dir = mkdtempSync(join(tmpdir(), 'rct-xtables-'));
    const lockFile = join(dir, 'xtables.lock');
    writeFileSync(lockFile, '');
    const holder = spawn('flock', [lockFile, 'sleep', '30'], { stdio: 'ignore' });
    try {
      const agent = startAgent(lab.node, {
        SERVICE_CIDRS,
        FIREWALL_BACKEND: 'iptables-legacy',
        IPTABLES_LOCK_WAIT: '2s',
        XTABLES_LOCKFILE: lockFile,
      });
      expect((await agent.waitForSummary(15_000)).backend).toBe('iptables-legacy');
      await sleep(500);
      agent.signal('SIGTERM');
      expect(await agent.exitWithin(15_000)).toEqual({ exitCode: 0, signal: undefined });
      expect(agent.logs.some((line) => line.msg === 'stopping' && line.signal === 'SIGTERM')).toBe(true);
    } finally {
      holder.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('CLEANUP_ON_EXIT=true removes the rules on SIGTERM', async () => {
    const agent = startAgent(lab.node, { SERVICE_CIDRS, CLEANUP_ON_EXIT: 'true' });
    // From a clean node (beforeEach) a start always writes, so "rules applied" must come.
    await agent.waitForMessage('rules applied');
    expect(await lab.nodeFirewall()).not.toBe(clean);
    expect(await lab.measureLoop('ipv4', 3)).toBe(0);
    expect((await agent.stop('SIGTERM')).exitCode).toBe(0);
    expect(await lab.nodeFirewall()).toBe(clean);
  });

  it('converges after 10 SIGKILLs at random moments to exactly the state a clean start gives', async () => {
    // Each start is waited for by readiness (/readyz: applied and in step), not by a log line: a
    // start after a kill that landed once the rules were complete finds them in step and writes
    // nothing, so it has no "rules applied" to log.
    const ready = { SERVICE_CIDRS, LISTEN_ADDRESS };
    // The reference: what a clean start installs, and how long it takes on this machine now.
    const reference = startAgent(lab.node, ready);
    await reference.waitUntilReady();
    const startup = reference.elapsedAt(await reference.waitForMessage('rules applied'));
    expect((await reference.stop('SIGTERM')).exitCode).toBe(0);
    const expected = await lab.nodeFirewall();
    expect(expected).not.toBe(clean);
    await agentCli(lab.node, ['cleanup']);

    // Kill agents at random points of their start-up and apply, alternating the CIDR set so some
    // deaths land in the middle of a transaction that changes something. The window scales with
    // the measured start-up, so under load too about a third of the kills land after the rules are
    // complete (the last killed agent's set differs from the final one's).
    for (let i = 0; i < 10; i += 1) {
      const cidrs = i % 2 === 0 ? SERVICE_CIDRS : `${SERVICE_CIDRS},10.100.0.0/16,fd00:100::/112`;
      const agent = startAgent(lab.node, { SERVICE_CIDRS: cidrs });
      await sleep(Math.floor(Math.random() * startup * 1.5));
      await agent.stop('SIGKILL');
    }
    const agent = startAgent(lab.node, ready);
    await agent.waitUntilReady();
    expect((await agent.stop('SIGTERM')).exitCode).toBe(0);
    expect(await lab.nodeFirewall()).toBe(expected);
    expect(await lab.measureLoop('ipv4', 3)).toBe(0);
  });

  it('a restart that finds its rules complete is ready without writing, and leaves them as they were', async () => {
    const ready = { SERVICE_CIDRS, LISTEN_ADDRESS };
    const first = startAgent(lab.node, ready);
    await first.waitUntilReady();
    await first.stop('SIGKILL');
    const installed = await lab.nodeFirewall();
    expect(installed).not.toBe(clean);

    const second = startAgent(lab.node, ready);
    await second.waitUntilReady();
    expect(second.logs.filter((line) => line.msg.startsWith('rules applied'))).toEqual([]);
    expect((await second.stop('SIGTERM')).exitCode).toBe(0);
    expect(await lab.nodeFirewall()).toBe(installed);
  });

  it('a switch of backend between runs leaves no leftovers in the old one', async () => {
    const first = startAgent(lab.node, { SERVICE_CIDRS, FIREWALL_BACKEND: 'iptables-legacy' });
    await first.waitForMessage('rules applied');
    // The lab's kube-proxy writes with iptables-nft: forcing legacy is allowed, with a warning.
    const mismatch = await first.waitForLog((line) =>
      String(line.warning).includes("this node's kube-proxy/kubelet use iptables-nft"),
    );
    expect(mismatch.level).toBe('warn');
    await first.stop('SIGTERM');
    expect(await installedIn()).toEqual(['iptables-legacy']);

    // Ready (its own rules in place) and the old backend's rules removed, in whichever order.
    const second = startAgent(lab.node, { SERVICE_CIDRS, FIREWALL_BACKEND: 'iptables-nft', LISTEN_ADDRESS });
    await second.waitUntilReady();
    await second.waitForLine('leftovers of an earlier run removed', { backend: 'iptables-legacy' });
    await second.stop('SIGTERM');
    expect(await installedIn()).toEqual(['iptables-nft']);

    const third = startAgent(lab.node, { SERVICE_CIDRS, LISTEN_ADDRESS });
    await third.waitUntilReady();
    await third.waitForLine('leftovers of an earlier run removed', { backend: 'iptables-nft' });
    await third.stop('SIGTERM');
    expect(await installedIn()).toEqual(['nft']);
    expect(await lab.measureLoop('ipv4', 3)).toBe(0);
  });
});

// A lab of its own: iptables-legacy leaves its (empty) filter tables behind, which the suite above
// would take for a node changed by its tests.
describeKernel('agent stop deadline in the loop lab', () => {
  let lab: LoopLab;

  beforeAll(async () => {
    lab = await LoopLab.create();
  });
  afterAll(async () => {
    await agentCli(lab.node, ['cleanup']);
    await lab?.destroy();
  });

  it('a removal stuck on the xtables lock past the stop deadline: exit 1, the stuck command ended with the agent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rct-xtables-'));
    const lockFile = join(dir, 'xtables.lock');
    writeFileSync(lockFile, '');
    const agent = startAgent(lab.node, {
      SERVICE_CIDRS,
      LISTEN_ADDRESS,
      FIREWALL_BACKEND: 'iptables-legacy',
      CLEANUP_ON_EXIT: 'true',
      IPTABLES_LOCK_WAIT: '30s',
      XTABLES_LOCKFILE: lockFile,
    });
    let holder: ReturnType<typeof spawn> | undefined;
    try {
      await agent.waitUntilReady(15_000);
      // Held from now on: the removal at SIGTERM waits for it, up to 30 s, well past the deadline.
      holder = spawn('flock', [lockFile, 'sleep', '60'], { stdio: 'ignore' });
      await sleep(300);
      agent.signal('SIGTERM');
      // Before the fix: exit 0 at the deadline, with cleanup() never told to stop.
      expect((await agent.exitWithin(15_000)).exitCode).toBe(1);
      expect(agent.logs.some((line) => line.msg === 'stop deadline passed')).toBe(true);
      // iptables-legacy-restore, waiting for the lock, was ended too.
      expect(await lab.node.pids()).toEqual([]);
    } finally {
      holder?.kill('SIGKILL');
      await agent.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
