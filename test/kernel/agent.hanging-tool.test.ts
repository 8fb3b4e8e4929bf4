import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpGet, LAB, LabProcess, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { childrenOf } from '../src/netns-processes.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * A firewall tool that hangs (an `nft` stuck on a lock, a kernel busy elsewhere) with the reconciler,
 * /metrics scrapes and the stale ClusterIP reports all wanting to read: the agent never has more than
 * one `nft` running, and its endpoints say what is wrong. The `nft` here is a script first on PATH
 * that hangs every command while a flag file exists (the change event monitor excepted, which
 * always runs the real nft).
 */

const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;
const LISTEN_ADDRESS = '127.0.0.1:9771';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeKernel('agent: a hanging firewall tool', () => {
  let lab: LoopLab;
  let dir: string;
  let flag: string;
  /** What a hanging command runs as: `sleep`, renamed so the test finds its own and no other. */
  let marker: string;

  beforeAll(async () => {
    lab = await LoopLab.create();
    dir = mkdtempSync(join(tmpdir(), 'rct-hang-'));
    flag = join(dir, 'hang');
    marker = `rct-hanging-nft-${process.pid}`;
    const nft = execFileSync('bash', ['-c', 'command -v nft'], { encoding: 'utf8' }).trim();
    writeFileSync(
      join(dir, 'nft'),
      `#!/bin/bash\ncase " $* " in *" monitor "*) exec ${nft} "$@";; esac\nif [ -e ${flag} ]; then exec -a "${marker} $*" sleep 600; fi\nexec ${nft} "$@"\n`,
    );
    chmodSync(join(dir, 'nft'), 0o755);
  });
  /** Until the agent says (on its socket, through `status`) that its start is complete. */
  async function waitForRunning(): Promise<void> {
    for (let tries = 0; tries < 100; tries += 1) {
      const status = await agentCli(lab.node, ['status', '--json'], { SERVICE_CIDRS });
      if ((JSON.parse(status.stdout) as { agent: { state?: string } }).agent.state === 'running') return;
      await sleep(100);
    }
    throw new Error('the agent never said it was running');
  }

  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await lab?.destroy();
  });

  it('keeps at most one nft running while every command hangs, /readyz and /healthz say why, and it stops at once', async () => {
    const agent = startAgent(lab.node, {
      SERVICE_CIDRS,
      LISTEN_ADDRESS,
      RESYNC_INTERVAL: '1s',
      FIREWALL_BACKEND: 'nft',
      PATH: `${dir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    });
    const pid = agent.pid as number;
    try {
      await agent.waitUntilReady(15_000);
      // Past its start-up chores too (they read other tables once, kube-proxy's among them).
      await waitForRunning();
      writeFileSync(flag, '');
      // Eight scrapers at once, again and again: each scrape past the metrics cache wants a read.
      const script = `const end = Date.now() + 4500; (async () => { while (Date.now() < end) { await Promise.all(Array.from({ length: 8 }, () => fetch('http://${LISTEN_ADDRESS}/metrics', { signal: AbortSignal.timeout(300) }).catch(() => {}))); await new Promise((r) => setTimeout(r, 100)); } })();`;
      const scrapers = new LabProcess('ip', ['netns', 'exec', lab.node.name, process.execPath, '-e', script], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        description: `8 concurrent scrapers of /metrics in ${lab.node.name}`,
      });
      let most: string[] = [];
      const seen = new Set<number>();
      const deadline = Date.now() + 5_000;
      while (Date.now() < deadline) {
        const hanging = childrenOf(pid).filter((child) => child.command.startsWith(marker));
        for (const child of hanging) seen.add(child.pid);
        if (hanging.length > most.length) most = hanging.map((child) => child.command);
        await sleep(50);
      }
      await scrapers.exited;
      console.log(`[hanging nft] at most ${most.length} running at once; ${seen.size} started in 5 s`);
      expect(seen.size).toBeGreaterThan(0);
      expect(most, 'the hanging nft commands at the worst moment').toHaveLength(1);
      // Past one resync without a finished attempt: not ready, and why.
      const ready = await httpGet(lab.node, `http://${LISTEN_ADDRESS}/readyz`);
      expect(ready.status).toBe(503);
      expect(ready.body).toMatch(/^cannot verify the rules: a reconcile has been waiting on the nft commands for \d+s/);
      // Past 3 resyncs without one: the loop counts as stuck, which a restart would cure.
      const alive = await httpGet(lab.node, `http://${LISTEN_ADDRESS}/healthz`);
      expect(alive.status).toBe(503);
      expect(alive.body).toMatch(/^no reconcile attempt has completed for \d+s, more than 3 resync intervals/);
      // Stopping does not wait for the hanging read: it is ended, and so is every hanging nft.
      expect((await agent.stop('SIGTERM')).exitCode).toBe(0);
      expect(agent.logs.some((line) => line.msg === 'stop deadline passed')).toBe(false);
      expect(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })).not.toContain(marker);
    } finally {
      rmSync(flag, { force: true });
      await agent.stop('SIGKILL');
      await agentCli(lab.node, ['cleanup']);
    }
  });
});
