import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeCommand } from '@route-controller/lab';
import { describe, expect, it } from 'vitest';

const BIN = new URL('../bin/route-controller.cjs', import.meta.url).pathname;

describe('the bin', () => {
  it('answers --version with the version alone, and nothing on stderr', () => {
    const run = spawnSync(BIN, ['--version'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    expect(run.stderr).toBe('');
  });

  it('answers --version from the package manifest without loading the bundle (none is there)', () => {
    // A copy of the bin beside a manifest and no dist/: loading the bundle would fail.
    const root = mkdtempSync(join(tmpdir(), 'rc-bin-'));
    try {
      mkdirSync(join(root, 'bin'));
      copyFileSync(BIN, join(root, 'bin', 'route-controller.cjs'));
      writeFileSync(join(root, 'package.json'), JSON.stringify({ version: '9.8.7' }));
      const run = spawnSync(process.execPath, [join(root, 'bin', 'route-controller.cjs'), '--version'], {
        encoding: 'utf8',
      });
      expect(run.stderr).toBe('');
      expect(run.stdout).toBe('9.8.7\n');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("runs Node with V8 flags that print nothing, also once Node's built-ins load", () => {
    // V8 warns on stderr about some flag combinations only when a feature initialises (--lite-mode
    // does, lazily): load what the agent loads and listen.
    const [node, ...flags] = nodeCommand(BIN).slice(0, -1);
    expect(flags.length).toBeGreaterThan(0);
    const run = spawnSync(node as string, [...flags, '-e', 'require("zlib"); import("node:module")'], {
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
  });
});
