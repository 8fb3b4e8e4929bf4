import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeCommand } from '../src/agent-process.js';

describe('nodeCommand', () => {
  const script = (shebang: string) => {
    const file = join(mkdtempSync(join(tmpdir(), 'rc-lab-')), 'bin.js');
    writeFileSync(file, `${shebang}\nimport './x.mjs';\n`);
    return file;
  };

  it('keeps the V8 flags of an `env -S node` shebang, as running the script itself would', () => {
    const file = script('#!/usr/bin/env -S node --max-semi-space-size=1 --max-opt=2');
    expect(nodeCommand(file)).toEqual([process.execPath, '--max-semi-space-size=1', '--max-opt=2', file]);
  });

  it('runs a plain node script with no flags', () => {
    const file = script('#!/usr/bin/env node');
    expect(nodeCommand(file)).toEqual([process.execPath, file]);
  });

  it("runs the agent's own bin with the flags its shebang names", () => {
    const bin = new URL('../../agent/bin/route-controller.cjs', import.meta.url).pathname;
    expect(nodeCommand(bin).slice(1, -1)).toEqual(['--max-opt=0']);
  });
});
