import { MAX_CIDRS_PER_FAMILY } from '@route-controller/core';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';

/** Runs the CLI in-process and returns its exit code and what it printed. */
async function cli(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  process.exitCode = undefined;
  await main(['node', 'route-controller', ...args], { out: (t) => out.push(t), err: (t) => err.push(t) });
  const code = process.exitCode ?? 0;
  process.exitCode = undefined;
  return { code, stdout: out.join(''), stderr: err.join('') };
}

describe('the command line', () => {
  afterEach(() => {
    process.exitCode = undefined;
  });

  it.each([
    [[], 'no command given'],
    [['frob'], "unknown command 'frob'"],
    [['run', '--frob'], "unknown option '--frob'"],
    [['status', 'extra'], 'too many arguments'],
    [['demo'], "unknown command 'demo'"],
    [['probe', '--backend'], "option '--backend <name>' argument missing"],
  ])('%j is a usage error: exit 2, one line with ERR_RC_USAGE and where to look', async (args, message) => {
    const { code, stderr, stdout } = await cli(...args);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^error ERR_RC_USAGE: /);
    expect(stderr).toContain(message);
    expect(stderr).toMatch(/Run route-controller( \w+)? --help for the (usage|commands)/);
  });

  it('prints the version and help on stdout with exit 0', async () => {
    expect(await cli('--version')).toMatchObject({ code: 0, stdout: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    const help = await cli('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Exit codes: 0 success, 1 a failure at run time, 2 a bad setting');
  });

  it('`help` and `help <command>` print the help on stdout with exit 0', async () => {
    const help = await cli('help');
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toContain('Usage: route-controller [options] [command]');
    const status = await cli('help', 'status');
    expect(status).toMatchObject({ code: 0, stderr: '' });
    expect(status.stdout).toContain('Usage: route-controller status [options]');
  });

  it('`help frob` is a usage error: exit 2, naming the unknown command', async () => {
    const { code, stderr } = await cli('help', 'frob');
    expect(code).toBe(2);
    expect(stderr).toMatch(/^error ERR_RC_USAGE: unknown command 'frob'/m);
  });

  it('refuses every bad setting at once, exit 2, one plain line each with its own code', async () => {
    const saved = { ...process.env };
    try {
      Object.assign(process.env, { SERVICE_CIDRS: '10.96.0.0/33', FIREWALL_BACKEND: 'NFT', CLEANUP_ON_EXIT: 'yes' });
      const { code, stderr } = await cli('run');
      expect(code).toBe(2);
      const lines = stderr.trim().split('\n');
      expect(lines.map((line) => /^error (ERR_RC_\w+): (\w+)=/.exec(line)?.slice(1))).toEqual([
        ['ERR_RC_INVALID_CIDR', 'SERVICE_CIDRS'],
        ['ERR_RC_INVALID_CONFIG', 'FIREWALL_BACKEND'],
        ['ERR_RC_INVALID_CONFIG', 'CLEANUP_ON_EXIT'],
      ]);
      expect(stderr).not.toMatch(/\n\s+at /);
    } finally {
      process.env = saved;
    }
  });

  it('refuses SERVICE_CIDRS over the per-family cap as a bad setting: exit 2, ERR_RC_TOO_MANY_CIDRS', async () => {
    const saved = { ...process.env };
    try {
      const many = Array.from({ length: MAX_CIDRS_PER_FAMILY + 1 }, (_, i) => `fd00:1::${i.toString(16)}:0/112`);
      Object.assign(process.env, { SERVICE_CIDRS: many.join(',') });
      const { code, stderr } = await cli('plan');
      expect(code).toBe(2);
      expect(stderr.trim().split('\n')).toEqual([
        expect.stringMatching(/^error ERR_RC_TOO_MANY_CIDRS: SERVICE_CIDRS is invalid: /),
      ]);
    } finally {
      process.env = saved;
    }
  });
});
