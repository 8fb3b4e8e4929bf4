import type { CommandRequest, CommandResult, CommandRunner } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { SerialCommandRunner } from '../src/backends/serial-command-runner.js';

/** A runner whose commands hang until the test ends them; it counts how many run at once. */
class HangingRunner implements CommandRunner {
  readonly started: CommandRequest[] = [];
  readonly #pending: { finish: (result: CommandResult) => void; request: CommandRequest }[] = [];
  inFlight = 0;
  maxInFlight = 0;

  run(request: CommandRequest): Promise<CommandResult> {
    this.started.push(request);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise((resolve, reject) => {
      const entry = {
        request,
        finish: (result: CommandResult) => {
          this.inFlight -= 1;
          resolve(result);
        },
      };
      request.signal?.addEventListener(
        'abort',
        () => {
          this.inFlight -= 1;
          this.#pending.splice(this.#pending.indexOf(entry), 1);
          reject(Object.assign(new Error('canceled'), { code: 'ERR_RC_COMMAND_CANCELED' }));
        },
        { once: true },
      );
      this.#pending.push(entry);
    });
  }

  /** Ends the oldest command still running with `stdout`. */
  finish(stdout: string): void {
    const next = this.#pending.shift();
    next?.finish({ exitCode: 0, stdout, stderr: '' });
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
const read = { file: 'nft', args: ['-j', 'list', 'table', 'inet', 'route-controller'] } as const;
const write = (input: string, signal?: AbortSignal) => ({
  file: 'nft',
  args: ['-j', '-f', '-'],
  input,
  ...(signal ? { signal } : {}),
});

describe('SerialCommandRunner', () => {
  it('runs one command at a time, in the order asked, however many callers ask at once', async () => {
    const inner = new HangingRunner();
    const runner = new SerialCommandRunner(inner);
    const results = [runner.run(write('a')), runner.run(read), runner.run(write('b'))];
    await settle();
    expect(inner.started).toHaveLength(1);
    for (const stdout of ['1', '2', '3']) {
      inner.finish(stdout);
      await settle();
    }
    expect((await Promise.all(results)).map((r) => r.stdout)).toEqual(['1', '2', '3']);
    expect(inner.started.map((r) => r.input ?? 'read')).toEqual(['a', 'read', 'b']);
    expect(inner.maxInFlight).toBe(1);
  });

  it('shares an identical read running or waiting, so a hanging tool never lengthens the line', async () => {
    const inner = new HangingRunner();
    const runner = new SerialCommandRunner(inner);
    // The reconciler's read hangs; scrapes and the stale reporter ask the same read again and again.
    const first = runner.run(read);
    const waiting = runner.run(write('x'));
    const reads = Array.from({ length: 20 }, () => runner.run(read));
    await settle();
    expect(inner.started).toHaveLength(1);
    inner.finish('first');
    await settle();
    inner.finish('written');
    await settle();
    inner.finish('second');
    expect((await first).stdout).toBe('first');
    expect((await waiting).stdout).toBe('written');
    // The first read was still running when they asked: they share its answer.
    expect(new Set((await Promise.all(reads)).map((r) => r.stdout))).toEqual(new Set(['first']));
    expect(inner.started).toHaveLength(2);
  });

  it('does not share a read that carries stdin or a signal of its own', async () => {
    const inner = new HangingRunner();
    const runner = new SerialCommandRunner(inner);
    const signal = new AbortController().signal;
    const all = [runner.run(read), runner.run({ ...read, signal }), runner.run({ ...read, input: '' })];
    for (let i = 0; i < 3; i += 1) {
      await settle();
      inner.finish(String(i));
    }
    expect((await Promise.all(all)).map((r) => r.stdout)).toEqual(['0', '1', '2']);
  });

  it('lets a caller that gives up leave the line at once, its command never started', async () => {
    const inner = new HangingRunner();
    const runner = new SerialCommandRunner(inner);
    const hanging = runner.run(read);
    const stop = new AbortController();
    const waiting = runner.run(write('x', stop.signal));
    stop.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_RC_COMMAND_CANCELED' });
    inner.finish('done');
    await hanging;
    await settle();
    expect(inner.started).toHaveLength(1);
  });

  it('interrupt() ends the command running and those waiting; later commands run as usual', async () => {
    const inner = new HangingRunner();
    const runner = new SerialCommandRunner(inner);
    const running = runner.run(read);
    const waiting = runner.run(write('x'));
    await settle();
    runner.interrupt();
    await expect(running).rejects.toMatchObject({ code: 'ERR_RC_COMMAND_CANCELED' });
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_RC_COMMAND_CANCELED' });
    expect(inner.inFlight).toBe(0);
    const later = runner.run(write('cleanup'));
    await settle();
    inner.finish('removed');
    expect((await later).stdout).toBe('removed');
    expect(inner.started.map((r) => r.input ?? 'read')).toEqual(['read', 'cleanup']);
  });
});
