import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../src/errors.js';
import {
  findExecutable,
  type LineStream,
  PrefixedStreamRunner,
  ProcessStreamRunner,
  type StreamRequest,
  type StreamRunner,
} from '../src/stream-runner.js';

async function collect(stream: LineStream): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of stream) lines.push(line);
  return lines;
}

const node = (script: string, signal = new AbortController().signal): StreamRequest => ({
  file: process.execPath,
  args: ['-e', script],
  signal,
});

/** Whether `pid` is gone (or a zombie nobody reaps: dead all the same). */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

describe.each([
  ['with setpriv --pdeathsig', true],
  ['without it', false],
] as const)('ProcessStreamRunner %s', (_name, dieWithParent) => {
  const runner = new ProcessStreamRunner({ dieWithParent });

  it('yields stdout line by line, the last one without a newline too, and hands stderr over', async () => {
    const stderr: string[] = [];
    const stream = runner.start({
      ...node('console.log("a"); console.error("oops"); process.stdout.write("b\\n\\nc")'),
      onStderr: (line) => stderr.push(line),
    });
    expect(await stream.spawned).toBeGreaterThan(0);
    expect(await collect(stream)).toEqual(['a', 'b', '', 'c']);
    expect(await stream.exited).toEqual({ exitCode: 0, signal: undefined });
    expect(stderr).toEqual(['oops']);
  });

  it('passes args without a shell and reports a non-zero exit as data', async () => {
    const stream = runner.start({
      file: 'sh',
      args: ['-c', 'printf "%s\\n" "$1"; exit 3', 'sh', '$(echo no shell) ;'],
      signal: new AbortController().signal,
    });
    expect(await collect(stream)).toEqual(['$(echo no shell) ;']);
    expect(await stream.exited).toEqual({ exitCode: 3, signal: undefined });
  });

  it('keeps every line of a fast writer, in order', async () => {
    const stream = runner.start(node('for (let i = 0; i < 50000; i++) console.log(i)'));
    const lines = await collect(stream);
    expect(lines).toHaveLength(50_000);
    expect(lines.every((line, i) => line === String(i))).toBe(true);
  });

  it('stops the process when the signal aborts, and iteration ends', async () => {
    const controller = new AbortController();
    const stream = runner.start(node('console.log("up"); setInterval(() => {}, 1000)', controller.signal));
    const lines: string[] = [];
    for await (const line of stream) {
      lines.push(line);
      controller.abort();
    }
    expect(lines).toEqual(['up']);
    expect(await stream.exited).toMatchObject({ signal: 'SIGTERM' });
  });

  it('ends the process when the consumer leaves the loop early, and waits until it has ended', async () => {
    const stream = runner.start(node('console.log("up"); setInterval(() => {}, 1000)'));
    for await (const line of stream) {
      expect(line).toBe('up');
      break;
    }
    const pid = stream.pid ?? 0;
    expect(pid).toBeGreaterThan(0);
    // Leaving the loop returned only once the process had ended: nothing left to wait for.
    expect(gone(pid)).toBe(true);
    expect(await stream.exited).toMatchObject({ signal: 'SIGTERM' });
  });

  it('ends the process when the consumer throws out of the loop', async () => {
    const stream = runner.start(node('console.log("up"); setInterval(() => {}, 1000)'));
    const consume = async () => {
      for await (const _line of stream) throw new Error('consumer failed');
    };
    await expect(consume()).rejects.toThrow('consumer failed');
    expect(gone(stream.pid ?? 0)).toBe(true);
  });

  it('rejects a missing binary with ERR_RC_COMMAND_NOT_FOUND, from exited and from iteration', async () => {
    const stream = runner.start({
      file: 'route-controller-no-such-binary',
      args: [],
      signal: new AbortController().signal,
    });
    await expect(stream.exited).rejects.toMatchObject({ code: ErrorCodes.CommandNotFound });
    await expect(collect(stream)).rejects.toMatchObject({ code: ErrorCodes.CommandNotFound });
  });

  it('starts nothing when the signal has already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const stream = runner.start(node('console.log("never")', controller.signal));
    expect(await stream.spawned).toBeUndefined();
    expect(stream.pid).toBeUndefined();
    expect(await collect(stream)).toEqual([]);
  });
});

const usable = await new ProcessStreamRunner().diesWithParent();

describe('ProcessStreamRunner: a child outliving a SIGKILLed parent', () => {
  // The parent is a separate node process using the built runner, so it can be killed for real.
  const dist = new URL('../dist/stream-runner.js', import.meta.url).href;
  const parent = (dieWithParent: boolean) => {
    const script = `import(${JSON.stringify(dist)}).then(({ ProcessStreamRunner }) => {
      const stream = new ProcessStreamRunner({ dieWithParent: ${dieWithParent} })
        .start({ file: 'sleep', args: ['30'], signal: new AbortController().signal });
      stream.spawned.then((pid) => console.log(pid));
      setInterval(() => {}, 1000);
    })`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return new Promise<{ parent: typeof child; pid: number }>((resolve) => {
      child.stdout.once('data', (data: Buffer) => resolve({ parent: child, pid: Number(String(data).trim()) }));
    });
  };

  it.skipIf(!usable)('dies at once with setpriv --pdeathsig', async () => {
    const { parent: p, pid } = await parent(true);
    expect(gone(pid)).toBe(false);
    p.kill('SIGKILL');
    expect(await waitUntil(() => gone(pid), 5_000)).toBe(true);
  });

  it('lives on without it (what the pdeathsig is for)', async () => {
    const { parent: p, pid } = await parent(false);
    p.kill('SIGKILL');
    await new Promise((resolve) => p.once('exit', resolve));
    await new Promise((resolve) => setTimeout(resolve, 300));
    try {
      expect(gone(pid)).toBe(false);
    } finally {
      process.kill(pid, 'SIGKILL');
    }
  });
});

describe('PrefixedStreamRunner', () => {
  it('runs the command behind the prefix', async () => {
    const seen: StreamRequest[] = [];
    const inner: StreamRunner = {
      start: (request) => {
        seen.push(request);
        return new ProcessStreamRunner({ dieWithParent: false }).start(request);
      },
    };
    const prefixed = new PrefixedStreamRunner(inner, ['env', 'GREETING=hi']);
    const stream = prefixed.start({ file: 'sh', args: ['-c', 'echo $GREETING'], signal: new AbortController().signal });
    expect(await collect(stream)).toEqual(['hi']);
    expect(seen.map((r) => [r.file, ...r.args])).toEqual([['env', 'GREETING=hi', 'sh', '-c', 'echo $GREETING']]);
  });
});

describe('findExecutable', () => {
  it('finds a binary on PATH as exec would, and nothing for a missing one', () => {
    expect(findExecutable('sh', '/nonexistent:/bin:/usr/bin')).toMatch(/\/sh$/);
    expect(findExecutable('route-controller-no-such-binary')).toBeUndefined();
    expect(findExecutable('/bin/sh')).toBe('/bin/sh');
  });
});
