import * as childProcess from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ProcessStreamRunner } from '../src/stream-runner.js';

// Every synchronous way to spawn, watched: none may block the event loop.
vi.mock('node:child_process', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:child_process')>();
  return {
    ...actual,
    execFileSync: vi.fn(actual.execFileSync),
    execSync: vi.fn(actual.execSync),
    spawnSync: vi.fn(actual.spawnSync),
  };
});

describe('ProcessStreamRunner: probing setpriv', () => {
  let dir: string;
  let path: string | undefined;
  const calls = async () => (await readFile(join(dir, 'calls'), 'utf8').catch(() => '')).split('\n').filter(Boolean);

  beforeAll(async () => {
    // A setpriv first on PATH that logs each run, then runs the real one.
    dir = await mkdtemp(join(tmpdir(), 'rc-setpriv-'));
    const real = childProcess.execFileSync('sh', ['-c', 'command -v setpriv'], { encoding: 'utf8' }).trim();
    await writeFile(
      join(dir, 'setpriv'),
      `#!/bin/sh\nprintf '%s\\n' "$*" >> ${join(dir, 'calls')}\nexec ${real} "$@"\n`,
      {
        mode: 0o755,
      },
    );
    path = process.env.PATH;
    process.env.PATH = `${dir}:${path ?? ''}`;
    vi.mocked(childProcess.execFileSync).mockClear();
  });

  afterAll(async () => {
    process.env.PATH = path;
    await rm(dir, { recursive: true, force: true });
  });

  it('probes once, asynchronously, for every stream started, and never spawns synchronously', async () => {
    const runner = new ProcessStreamRunner();
    const streams = [1, 2, 3].map(() =>
      runner.start({ file: 'sh', args: ['-c', 'echo hi'], signal: new AbortController().signal }),
    );
    for (const stream of streams) {
      const lines: string[] = [];
      for await (const line of stream) lines.push(line);
      expect(lines).toEqual(['hi']);
    }
    const probes = (await calls()).filter((call) => call.endsWith('-- true'));
    expect(probes).toEqual(['--pdeathsig KILL -- true']);
    // The three streams ran under setpriv too.
    expect((await calls()).filter((call) => call.includes('echo hi'))).toHaveLength(3);
    expect(childProcess.execFileSync).not.toHaveBeenCalled();
    expect(childProcess.execSync).not.toHaveBeenCalled();
    expect(childProcess.spawnSync).not.toHaveBeenCalled();
  });
});
