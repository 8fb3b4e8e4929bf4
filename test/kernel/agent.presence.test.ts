import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NftBackend } from '@route-controller/backend-nft';
import { LAB, LoopLab, Netns } from '@route-controller/lab';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { listenIn } from '../src/netns-processes.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * One agent per node, and the one-shot commands finding it: the agent holds an abstract unix socket,
 * which lives in the network namespace (the node's, for a host-network pod). Proven here with two
 * namespaces: the kernel fact first, then the agent, `status` and `cleanup` on it.
 */

const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;
const LISTEN_ADDRESS = '127.0.0.1:9771';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Connects to the abstract name from inside `ns`: what answered, or the error code. */
async function ask(ns: Netns, name: string): Promise<string> {
  const script = `const c = require('node:net').createConnection({ path: ${JSON.stringify(`\0${name}`)} }); let t = ''; c.on('data', (d) => (t += d)); c.on('end', () => process.stdout.write('answer:' + t)); c.on('error', (e) => process.stdout.write('error:' + e.code));`;
  return (await ns.must(process.execPath, ['-e', script])).stdout;
}

describeKernel('one agent per node, found by the commands', () => {
  let lab: LoopLab;
  let other: Netns;
  let clean: string;

  beforeAll(async () => {
    lab = await LoopLab.create();
    other = await Netns.create('presence');
    clean = await lab.nodeFirewall();
  });
  afterAll(async () => {
    await new NftBackend({ runner: other?.runner }).cleanup().catch(() => undefined);
    await other?.delete();
    await lab?.destroy();
  });
  beforeEach(async () => {
    await agentCli(lab.node, ['cleanup']);
  });

  describe('kernel fact', () => {
    it('an abstract unix socket belongs to its network namespace: unseen from another, free there to bind', async () => {
      const name = `rct-fact-${process.pid}`;
      const first = await listenIn(lab.node, { abstract: name }, 'node');
      try {
        expect(await ask(lab.node, name)).toBe('answer:node');
        expect(await ask(other, name)).toBe('error:ECONNREFUSED');
        const second = await listenIn(other, { abstract: name }, 'other');
        try {
          expect(await ask(other, name)).toBe('answer:other');
          expect(await ask(lab.node, name)).toBe('answer:node');
        } finally {
          await second.stop();
        }
      } finally {
        await first.stop();
      }
      // Gone with its process: nothing to remove, nothing left behind.
      expect(await ask(lab.node, name)).toBe('error:ECONNREFUSED');
    });
  });

  it('a second agent on the node refuses to start (exit 1) and touches nothing; one in another namespace starts', async () => {
    const first = startAgent(lab.node, { SERVICE_CIDRS, LISTEN_ADDRESS });
    try {
      await first.waitUntilReady(15_000);
      const installed = await lab.nodeFirewall();
      const second = startAgent(lab.node, { SERVICE_CIDRS: `${SERVICE_CIDRS},10.100.0.0/16` });
      expect((await second.exitWithin(15_000)).exitCode).toBe(1);
      expect(second.logs.find((line) => line.level === 'fatal')).toMatchObject({
        msg: 'cannot start',
        code: 'ERR_RC_AGENT_RUNNING',
      });
      expect(await lab.nodeFirewall()).toBe(installed);
      const elsewhere = startAgent(other, { SERVICE_CIDRS, LISTEN_ADDRESS });
      try {
        await elsewhere.waitUntilReady(15_000);
      } finally {
        await elsewhere.stop('SIGTERM');
      }
      expect(first.isRunning).toBe(true);
    } finally {
      await first.stop('SIGTERM');
    }
  });

  it('status names the running agent, and says when none runs', async () => {
    const agent = startAgent(lab.node, { SERVICE_CIDRS, LISTEN_ADDRESS });
    try {
      await agent.waitUntilReady(15_000);
      const running = JSON.parse((await agentCli(lab.node, ['status', '--json'], { SERVICE_CIDRS })).stdout);
      expect(running.agent).toMatchObject({ running: true, state: 'running', pid: agent.pid, backend: 'nft' });
      const text = (await agentCli(lab.node, ['status'], { SERVICE_CIDRS })).stdout;
      expect(text.split('\n')[0]).toMatch(
        /^agent: route-controller \S+ \(pid \d+, backend nft, running\) on this node$/,
      );
      // From another network namespace (another node, as far as the socket goes) it is not there.
      const elsewhere = JSON.parse((await agentCli(other, ['status', '--json'], { SERVICE_CIDRS })).stdout);
      expect(elsewhere.agent).toEqual({ running: false });
    } finally {
      await agent.stop('SIGTERM');
    }
    const after = (await agentCli(lab.node, ['status'], { SERVICE_CIDRS })).stdout;
    expect(after.split('\n')[0]).toMatch(/^agent: none runs on this node/);
    expect(after).toContain('drift repair: none while no agent runs on this node');
  });

  it('cleanup refuses beside a running agent, changing nothing; --force removes the rules and the agent puts them back', async () => {
    const agent = startAgent(lab.node, { SERVICE_CIDRS, LISTEN_ADDRESS });
    try {
      await agent.waitUntilReady(15_000);
      const installed = await lab.nodeFirewall();
      const refused = await agentCli(lab.node, ['cleanup']);
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toMatch(/^error ERR_RC_AGENT_RUNNING: an agent runs on this node/);
      expect(await lab.nodeFirewall()).toBe(installed);
      const from = agent.logs.length;
      const forced = await agentCli(lab.node, ['cleanup', '--force']);
      expect(forced.exitCode, forced.stderr).toBe(0);
      expect(forced.stderr).toMatch(/^warning: an agent runs on this node/);
      // What the warning says: the agent repairs it (from the change event, at once with nft).
      await agent.waitForMessage('drift repaired', 10_000, from);
      expect(await lab.measureLoop('ipv4', 3)).toBe(0);
    } finally {
      await agent.stop('SIGTERM');
    }
    expect((await agentCli(lab.node, ['cleanup'])).exitCode).toBe(0);
    expect(await lab.nodeFirewall()).toBe(clean);
  });

  it('a restart waits for the agent that is still stopping, then takes over', async () => {
    // The old agent's stop is held up: its removal of the rules waits for a held xtables lock.
    const dir = mkdtempSync(join(tmpdir(), 'rct-xtables-'));
    const lockFile = join(dir, 'xtables.lock');
    writeFileSync(lockFile, '');
    const locked = { IPTABLES_LOCK_WAIT: '30s', XTABLES_LOCKFILE: lockFile };
    const old = startAgent(lab.node, {
      SERVICE_CIDRS,
      LISTEN_ADDRESS,
      FIREWALL_BACKEND: 'iptables-legacy',
      CLEANUP_ON_EXIT: 'true',
      ...locked,
    });
    let holder: ReturnType<typeof spawn> | undefined;
    try {
      await old.waitUntilReady(15_000);
      holder = spawn('flock', [lockFile, 'sleep', '60'], { stdio: 'ignore' });
      await sleep(300);
      old.signal('SIGTERM');
      await old.waitForMessage('stopping');
      const next = startAgent(lab.node, { SERVICE_CIDRS, LISTEN_ADDRESS, ...locked });
      try {
        const waiting = await next.waitForMessage('waiting for the stopping agent to exit', 15_000);
        expect(waiting.holder).toMatchObject({ state: 'stopping', backend: 'iptables-legacy' });
        // The old one ends at its stop deadline; the new one then starts in its place.
        expect((await old.exitWithin(15_000)).exitCode).toBe(1);
        holder.kill('SIGKILL');
        await next.waitUntilReady(15_000);
        expect(await lab.measureLoop('ipv4', 3)).toBe(0);
      } finally {
        await next.stop('SIGTERM');
      }
    } finally {
      holder?.kill('SIGKILL');
      await old.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
