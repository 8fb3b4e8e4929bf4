import { execFileSync } from 'node:child_process';
import { Netns } from '@route-controller/lab';
import { expect, it } from 'vitest';
import { describeKernel } from '../src/prerequisites.js';

const listNamespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

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
});
