import { spawnSync } from 'node:child_process';
import { nodeCommand } from '@route-controller/lab';
import { describe, expect, it } from 'vitest';

const BIN = new URL('../bin/route-controller.js', import.meta.url).pathname;

describe('the bin', () => {
  it('answers --version with the version alone, and nothing on stderr', () => {
    const run = spawnSync(BIN, ['--version'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    expect(run.stderr).toBe('');
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
