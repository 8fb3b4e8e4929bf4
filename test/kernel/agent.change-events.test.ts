import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { IptablesBackend } from '@route-controller/backend-iptables';
import { NftBackend } from '@route-controller/backend-nft';
import { desiredState, type FirewallBackend, isInSync, parseCidrList } from '@route-controller/core';
import { type AgentProcess, httpGet, LAB, type LogLine, LoopLab, type Netns } from '@route-controller/lab';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent } from '../src/agent-bin.js';
import { describeKernel } from '../src/prerequisites.js';

const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;
const DESIRED = desiredState(parseCidrList(SERVICE_CIDRS).cidrs);
const LISTEN_ADDRESS = '127.0.0.1:9771';
const METRICS_LISTEN_ADDRESS = '127.0.0.1:9772';
/** Generous: a repair from an event takes tens of milliseconds; only a hang (or no event) reaches this. */
const REPAIR_WAIT_MS = 10_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The agent's "drift repaired" line, for drift noticed as `noticed` says. */
const repairedBy = (noticed: string) => (line: LogLine) => line.msg === 'drift repaired' && line.noticed === noticed;

/** A third party's change, as one command in the node (no shell). */
interface Drift {
  readonly what: string;
  readonly file: string;
  readonly args: readonly string[];
  readonly input?: string;
}

/**
 * The drift kinds of the issue, per backend: the ruleset flushed (last: it also takes the lab's
 * kube-proxy and pod rules), our table or chain deleted, an ACCEPT above our drop, the chain we
 * drop from flushed. For nft, "FORWARD" is our own base chain on the forward hook, and for
 * iptables-nft the security table's FORWARD: an ACCEPT in another chain of the hook (filter's)
 * cannot undo a drop that runs later, so only one in ours is drift.
 */
const DRIFTS: Record<'nft' | 'iptables-nft', Drift[]> = {
  nft: [
    { what: 'our table deleted', file: 'nft', args: ['delete', 'table', 'inet', 'route-controller'] },
    { what: 'our chain deleted', file: 'nft', args: ['delete', 'chain', 'inet', 'route-controller', 'forward'] },
    {
      what: 'an accept inserted at the top of our chain',
      file: 'nft',
      args: ['insert', 'rule', 'inet', 'route-controller', 'forward', 'accept'],
    },
    { what: 'our chain flushed', file: 'nft', args: ['flush', 'chain', 'inet', 'route-controller', 'forward'] },
    {
      what: 'an element deleted from our set',
      file: 'nft',
      args: ['flush', 'set', 'inet', 'route-controller', 'service-cidrs-v4'],
    },
    { what: 'the ruleset flushed', file: 'nft', args: ['flush', 'ruleset'] },
  ],
  // Our chain and jump live in the security table: its FORWARD is the one an ACCEPT can undo.
  'iptables-nft': [
    {
      what: 'an ACCEPT inserted at the top of security FORWARD',
      file: 'iptables-nft',
      args: ['-w', '-t', 'security', '-I', 'FORWARD', '1', '-j', 'ACCEPT'],
    },
    { what: 'security FORWARD flushed', file: 'iptables-nft', args: ['-w', '-t', 'security', '-F', 'FORWARD'] },
    {
      what: 'our chain flushed (IPv6)',
      file: 'ip6tables-nft',
      args: ['-w', '-t', 'security', '-F', 'ROUTE-CONTROLLER'],
    },
    {
      what: 'our chain deleted',
      file: 'iptables-nft-restore',
      args: ['--noflush'],
      input:
        '*security\n-D FORWARD -m comment --comment "route-controller: block forwarded traffic to Service CIDRs" -j ROUTE-CONTROLLER\n-F ROUTE-CONTROLLER\n-X ROUTE-CONTROLLER\nCOMMIT\n',
    },
    { what: 'the security table deleted', file: 'nft', args: ['delete', 'table', 'ip', 'security'] },
    { what: 'the ruleset flushed', file: 'nft', args: ['flush', 'ruleset'] },
  ],
};

function backendFor(name: 'nft' | 'iptables-nft', ns: Netns): FirewallBackend {
  return name === 'nft'
    ? new NftBackend({ runner: ns.runner })
    : new IptablesBackend({ mode: 'nft', runner: ns.runner });
}

async function metric(ns: Netns, name: string): Promise<number | undefined> {
  const text = (await httpGet(ns, `http://${METRICS_LISTEN_ADDRESS}/metrics`)).body;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

/** Processes whose parent is `pid`, named `comm`, with `arg` among their arguments. */
function children(pid: number, comm: string, arg?: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent !== pid || name !== comm) continue;
      if (arg && !readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0').includes(arg)) continue;
      found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Gone, or a zombie nobody reaps (this sandbox's PID 1 does not): dead all the same. */
function ended(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function until(what: string, done: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** The agent's `nft -j monitor ruleset` child, once it is running. */
async function monitorOf(agent: AgentProcess): Promise<number> {
  const pid = agent.pid;
  if (pid === undefined) throw new Error('the agent has no pid');
  await agent.waitForMessage('following kernel change events', 15_000);
  // By its arguments: a reconcile's `nft -j list` may be running next to it.
  const [monitor, ...more] = children(pid, 'nft', 'monitor');
  if (monitor === undefined || more.length > 0)
    throw new Error(`expected one nft child of ${pid}, found ${more.length + (monitor ? 1 : 0)}`);
  return monitor;
}

describeKernel('agent: drift repaired from kernel change events, without a resync', () => {
  for (const backend of ['nft', 'iptables-nft'] as const) {
    describe(`FIREWALL_BACKEND=${backend}, RESYNC_INTERVAL=1h`, () => {
      let lab: LoopLab;
      let agent: AgentProcess;

      beforeAll(async () => {
        lab = await LoopLab.create(backend === 'iptables-nft' ? { podAcceptRule: 'iptables-nft' } : {});
        agent = startAgent(lab.node, {
          SERVICE_CIDRS,
          FIREWALL_BACKEND: backend,
          RESYNC_INTERVAL: '1h',
          LISTEN_ADDRESS,
          METRICS_LISTEN_ADDRESS,
        });
        await agent.waitUntilReady(15_000);
        await agent.waitForMessage('following kernel change events', 15_000);
      });
      afterAll(async () => {
        await agent?.stop('SIGKILL');
        await lab?.destroy();
      });

      for (const drift of DRIFTS[backend]) {
        it(`repairs at once: ${drift.what}`, async () => {
          const from = agent.logs.length;
          await lab.node.must(drift.file, drift.args, drift.input);
          const repaired = await agent.waitForLog(repairedBy('from a kernel change event'), REPAIR_WAIT_MS, from);
          expect(repaired.level).toBe('warn');
          const observed = await backendFor(backend, lab.node).observe();
          expect(observed.problems).toEqual([]);
          expect(isInSync(observed, DESIRED)).toBe(true);
          expect(await lab.measureLoop('ipv4', 3)).toBe(0);
        });
      }

      it('counts every repair and the events, is up, and does not loop on its own writes', async () => {
        const repairs = DRIFTS[backend].length;
        expect(await metric(lab.node, 'route_controller_drift_repairs_total')).toBe(repairs);
        expect(await metric(lab.node, 'route_controller_change_events_up')).toBe(1);
        const applies = await metric(lab.node, 'route_controller_applies_total');
        const logged = agent.logs.length;
        // Quiet for a while: the echo of the last repair was read once, and nothing more happens.
        await sleep(1_500);
        expect(await metric(lab.node, 'route_controller_applies_total')).toBe(applies);
        expect(agent.logs.slice(logged).filter((line) => line.level !== 'debug')).toEqual([]);
        const text = (await httpGet(lab.node, `http://${METRICS_LISTEN_ADDRESS}/metrics`)).body;
        expect(Number(/route_controller_change_events_total\{scope="ours"\} (\d+)/.exec(text)?.[1])).toBeGreaterThan(0);
      });
    });
  }

  describe('foreign churn: events pause for polls of our table, and come back once it is quiet', () => {
    let lab: LoopLab;
    let agent: AgentProcess;
    beforeAll(async () => {
      lab = await LoopLab.create({ kubeProxy: 'none' });
      agent = startAgent(lab.node, { SERVICE_CIDRS, RESYNC_INTERVAL: '1h', LISTEN_ADDRESS, METRICS_LISTEN_ADDRESS });
      await agent.waitUntilReady(15_000);
      await agent.waitForMessage('following kernel change events', 15_000);
    });
    afterAll(async () => {
      await agent?.stop('SIGKILL');
      await lab?.destroy();
    });

    it('another tool replacing a small table 50 times a second: no monitor, drift repaired by a poll, then events again', async () => {
      const from = agent.logs.length;
      // A foreign table of three rules, replaced every 20 ms: about ten events each time.
      const rewrite =
        'add table ip churn\nflush table ip churn\nadd chain ip churn c\n' +
        'add rule ip churn c ip daddr 10.1.0.1 accept\nadd rule ip churn c ip daddr 10.1.0.2 accept\nadd rule ip churn c ip daddr 10.1.0.3 accept\n';
      const churn = spawn(
        'ip',
        ['netns', 'exec', lab.node.name, 'sh', '-c', `while :; do printf '${rewrite}' | nft -f -; sleep 0.02; done`],
        { stdio: 'ignore' },
      );
      try {
        const paused = await agent.waitForMessage(
          'change events paused for foreign churn; polling our table instead',
          REPAIR_WAIT_MS,
          from,
        );
        expect(paused).toMatchObject({ level: 'info', pollIntervalMs: expect.any(Number) });
        expect(Number(paused.eventsPerSecond)).toBeGreaterThan(100);
        await until('the monitor is stopped', () => children(agent.pid ?? 0, 'nft', 'monitor').length === 0);
        expect(await metric(lab.node, 'route_controller_change_events_up')).toBe(0);
        const text = (await httpGet(lab.node, `http://${METRICS_LISTEN_ADDRESS}/metrics`)).body;
        expect(text).toContain('route_controller_change_follow_mode{mode="polling"} 1');
        // Drift during the churn: a poll finds it.
        const drifted = agent.logs.length;
        await lab.node.must('nft', ['delete', 'table', 'inet', 'route-controller']);
        await agent.waitForLog(repairedBy('by a poll during foreign churn'), REPAIR_WAIT_MS, drifted);
        expect(isInSync(await backendFor('nft', lab.node).observe(), DESIRED)).toBe(true);
        expect(await lab.measureLoop('ipv4', 3)).toBe(0);
      } finally {
        churn.kill('SIGKILL');
        await new Promise((resolve) => churn.once('close', resolve));
      }
      // Quiet again: the next sample of the stream stays quiet, and events are back.
      await agent.waitForMessage('change events resumed after foreign churn', 30_000, from);
      await until('the monitor runs again', () => children(agent.pid ?? 0, 'nft', 'monitor').length === 1);
      expect(await metric(lab.node, 'route_controller_change_events_up')).toBe(1);
      const drifted = agent.logs.length;
      await lab.node.must('nft', ['flush', 'chain', 'inet', 'route-controller', 'forward']);
      await agent.waitForLog(repairedBy('from a kernel change event'), REPAIR_WAIT_MS, drifted);
    });
  });

  describe('the monitor child never outlives the agent', () => {
    let lab: LoopLab;
    beforeAll(async () => {
      lab = await LoopLab.create({ kubeProxy: 'none' });
    });
    afterAll(async () => {
      await lab?.destroy();
    });

    it('SIGTERM: the agent ends it before exiting', async () => {
      // Without setpriv (no /usr/bin on PATH), so that only the agent's own stop can end it.
      const agent = startAgent(lab.node, { SERVICE_CIDRS, RESYNC_INTERVAL: '1h', PATH: '/usr/sbin:/sbin' });
      const monitor = await monitorOf(agent);
      expect(ended(monitor)).toBe(false);
      expect((await agent.stop('SIGTERM')).exitCode).toBe(0);
      expect(ended(monitor)).toBe(true);
    });

    it('SIGTERM while the agent is still starting: an orderly stop all the same, nothing left behind', async () => {
      for (let i = 0; i < 3; i += 1) {
        const agent = startAgent(lab.node, { SERVICE_CIDRS, RESYNC_INTERVAL: '1h', PATH: '/usr/sbin:/sbin' });
        // The rules are in, the monitor and the start-up chores are (about to be) under way.
        await agent.waitForMessage(/^rules (applied|already in step)/, 15_000);
        const pid = agent.pid ?? 0;
        agent.signal('SIGTERM');
        const exit = await agent.exitWithin(10_000);
        expect(exit).toEqual({ exitCode: 0, signal: undefined });
        expect(agent.logs.some((line) => line.msg === 'stopping' && line.signal === 'SIGTERM')).toBe(true);
        expect(children(pid, 'nft')).toEqual([]);
      }
    });

    it('SIGKILL: it ends at once where setpriv --pdeathsig works (the image has it)', async () => {
      const agent = startAgent(lab.node, { SERVICE_CIDRS, RESYNC_INTERVAL: '1h' });
      const monitor = await monitorOf(agent);
      await agent.stop('SIGKILL');
      // No event is made: the kernel kills it as its parent dies.
      await until('the monitor ends after its parent was killed', () => ended(monitor));
    });

    it('SIGKILL without setpriv: it ends at its next event (EPIPE on the write)', async () => {
      // A PATH without /usr/bin has no setpriv: the fallback, a plain child.
      const agent = startAgent(lab.node, { SERVICE_CIDRS, RESYNC_INTERVAL: '1h', PATH: '/usr/sbin:/sbin' });
      const monitor = await monitorOf(agent);
      await agent.stop('SIGKILL');
      await sleep(300);
      expect(ended(monitor)).toBe(false);
      await lab.node.must('nft', ['add', 'table', 'ip', 'rct-poke']);
      await until('the monitor ends at the event after its parent was killed', () => ended(monitor));
      await lab.node.must('nft', ['delete', 'table', 'ip', 'rct-poke']);
    });
  });

  describe('FIREWALL_BACKEND=iptables-legacy: no events, the resync repairs', () => {
    let lab: LoopLab;
    let agent: AgentProcess;
    beforeAll(async () => {
      lab = await LoopLab.create({ podAcceptRule: 'iptables-legacy' });
      agent = startAgent(lab.node, {
        SERVICE_CIDRS,
        FIREWALL_BACKEND: 'iptables-legacy',
        RESYNC_INTERVAL: '1s',
        LISTEN_ADDRESS,
        METRICS_LISTEN_ADDRESS,
      });
      await agent.waitUntilReady(15_000);
    });
    afterAll(async () => {
      await agent?.stop('SIGKILL');
      await lab?.destroy();
    });

    it('says drift waits for the resync, starts no monitor, and the resync repairs', async () => {
      await agent.waitForLog(
        (line) =>
          line.msg === 'no kernel change events with this backend: drift is repaired by the resync' &&
          line.backend === 'iptables-legacy' &&
          line.resyncInterval === '1s',
      );
      expect(children(agent.pid ?? 0, 'nft')).toEqual([]);
      expect(await metric(lab.node, 'route_controller_change_events_up')).toBe(0);
      const from = agent.logs.length;
      await lab.node.must('iptables-legacy', ['-w', '-t', 'security', '-I', 'FORWARD', '1', '-j', 'ACCEPT']);
      await agent.waitForLog(repairedBy('by the resync'), REPAIR_WAIT_MS, from);
      expect(await lab.measureLoop('ipv4', 3)).toBe(0);
      await lab.node.must('iptables-legacy', ['-w', '-t', 'security', '-D', 'FORWARD', '-j', 'ACCEPT']);
    });
  });
});
