import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { findSessionAgents, LabProcess, Netns, removeStrayNamespaces } from '@route-controller/lab';
import { expect, it } from 'vitest';
import { startAgent } from '../src/agent-bin.js';
import { describeKernel } from '../src/prerequisites.js';

const listNamespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
const PATH_ONLY = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };

/** A command run inside `ns` (by name), tracked as the lab tracks its agents. */
const inside = (ns: string, command: readonly string[]) =>
  new LabProcess('ip', ['netns', 'exec', ns, ...command], { env: PATH_ONLY, description: command.join(' ') });

describeKernel('throwaway network namespaces', () => {
  it('get unique names, run commands inside and are removed', async () => {
    const a = await Netns.create('a');
    const b = await Netns.create('a');
    try {
      expect(a.name).not.toBe(b.name);
      expect(a.name).toMatch(new RegExp(`^rct-${process.pid}-\\d+-a$`));
      await a.must('ip', ['link', 'add', 'dummy0', 'type', 'veth', 'peer', 'name', 'dummy1']);
      expect((await a.exec('ip', ['link', 'show', 'dummy0'])).exitCode).toBe(0);
      expect((await b.exec('ip', ['link', 'show', 'dummy0'])).exitCode).not.toBe(0);
      await expect(a.must('ip', ['link', 'show', 'nope0'])).rejects.toThrow(/exited 1/);
    } finally {
      await a.delete();
      await b.delete();
    }
    expect(listNamespaces()).not.toContain(a.name);
    await a.delete(); // idempotent
  });

  it('start with an empty firewall, apart from the host', async () => {
    const ns = await Netns.create('empty');
    try {
      expect((await ns.must('nft', ['list', 'ruleset'])).stdout).toBe('');
    } finally {
      await ns.delete();
    }
  });

  it('end the processes still inside when deleted: SIGTERM, then SIGKILL for those that ignore it', async () => {
    const ns = await Netns.create('procs');
    const polite = inside(ns.name, ['sleep', '600']);
    const stubborn = inside(ns.name, ['sh', '-c', 'trap "" TERM; sleep 600']);
    // sleep, and sh with its own sleep
    await expect.poll(async () => (await ns.pids()).length).toBe(3);
    await ns.delete(300);
    expect(await polite.exited).toEqual({ exitCode: undefined, signal: 'SIGTERM' });
    expect(await stubborn.exited).toEqual({ exitCode: undefined, signal: 'SIGKILL' });
    expect(listNamespaces()).not.toContain(ns.name);
  });

  it('left by a run that is gone are swept with whatever still runs inside them', async () => {
    // A creator that has exited: the pid of a process that has just ended.
    const creator = spawn('true');
    await once(creator, 'exit');
    const name = `rct-${creator.pid}-1-stray`;
    execFileSync('ip', ['netns', 'add', name]);
    const leftover = inside(name, ['sleep', '600']);
    await expect.poll(() => execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).trim()).not.toBe('');
    expect(removeStrayNamespaces()).toContain(name);
    expect((await leftover.exited).signal).toBe('SIGKILL');
    expect(listNamespaces()).not.toContain(name);
  });
});

describeKernel('agents the lab starts', () => {
  it('are tracked until they exit, and found in /proc by their session tag', async () => {
    const ns = await Netns.create('tagged');
    try {
      const agent = startAgent(ns, { SERVICE_CIDRS: '10.96.0.0/16', LISTEN_ADDRESS: '127.0.0.1:9771' });
      await agent.waitUntilReady();
      expect(LabProcess.running().map((child) => child.pid)).toContain(agent.pid);
      const found = findSessionAgents().find(({ pid }) => pid === agent.pid);
      expect(found?.command).toMatch(/route-controller\.cjs run$/);
      expect(found?.parentPid).toBe(process.pid);
      expect((await agent.stop('SIGTERM')).exitCode).toBe(0);
      expect(LabProcess.running().map((child) => child.pid)).not.toContain(agent.pid);
      expect(findSessionAgents().map(({ pid }) => pid)).not.toContain(agent.pid);
    } finally {
      await ns.delete();
    }
  });
});
