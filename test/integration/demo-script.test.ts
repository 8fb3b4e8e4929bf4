import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** `pnpm demo` is scripts/demo.mjs; its options are checked before anything is made (no root needed). */
const DEMO = fileURLToPath(new URL('../../scripts/demo.mjs', import.meta.url));
const demo = (...args: string[]) => spawnSync(process.execPath, [DEMO, ...args], { encoding: 'utf8' });

describe('pnpm demo (scripts/demo.mjs)', () => {
  it('prints its usage on stdout with exit 0', () => {
    const run = demo('--help');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('Usage: pnpm demo [--json] [--pings <count>]');
    expect(run.stderr).toBe('');
  });

  it.each([
    [['--pings', '0'], '--pings "0" is invalid'],
    [['--pings', '1001'], '--pings "1001" is invalid'],
    [['--pings', 'ten'], '--pings "ten" is invalid'],
    [['--frob'], "Unknown option '--frob'"],
  ])('%j is a usage error: exit 2, one line with ERR_RC_USAGE and where to look', (args, message) => {
    const run = demo(...args);
    expect(run.status).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^error ERR_RC_USAGE: /)]);
    expect(run.stderr).toContain(message);
    expect(run.stderr).toContain('Run pnpm demo --help for the usage.');
  });
});
