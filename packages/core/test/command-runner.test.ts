import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatCommand, PrefixedCommandRunner, ProcessCommandRunner, runChecked } from '../src/command-runner.js';
import { ErrorCodes, RouteControllerError } from '../src/errors.js';
import { anyOrder, FakeCommandRunner } from '../src/testing/fake-command-runner.js';
import { RecordingCommandRunner } from '../src/testing/recording-command-runner.js';

describe('ProcessCommandRunner', () => {
  const runner = new ProcessCommandRunner();

  it('returns output and exit code', async () => {
    const result = await runner.run({
      file: process.execPath,
      args: ['-e', 'process.stdout.write("out"); process.stderr.write("err")'],
    });
    expect(result).toEqual({ exitCode: 0, stdout: 'out', stderr: 'err' });
  });

  it('treats a non-zero exit as data', async () => {
    const result = await runner.run({ file: process.execPath, args: ['-e', 'process.exit(3)'] });
    expect(result.exitCode).toBe(3);
  });

  it('writes input to stdin and passes args without a shell', async () => {
    const result = await runner.run({
      file: process.execPath,
      args: [
        '-e',
        'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(s+process.argv[1]))',
        '$(echo no shell) ;',
      ],
      input: 'hello ',
    });
    expect(result.stdout).toBe('hello $(echo no shell) ;\n');
  });

  it('rejects a missing binary with ERR_RC_COMMAND_NOT_FOUND and a cause', async () => {
    const error = await runner.run({ file: 'route-controller-no-such-binary', args: [] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RouteControllerError);
    expect((error as RouteControllerError).code).toBe(ErrorCodes.CommandNotFound);
    expect((error as RouteControllerError).hint).toContain('Install');
    expect((error as RouteControllerError).cause).toBeDefined();
  });

  it('rejects a command that runs too long with ERR_RC_COMMAND_TIMEOUT', async () => {
    const error = await runner.run({ file: 'sleep', args: ['5'], timeoutMs: 100 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.CommandTimeout });
    expect((error as RouteControllerError).cause).toBeDefined();
  });

  it('stops a command when its AbortSignal fires, with ERR_RC_COMMAND_CANCELED', async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    const error = await runner.run({ file: 'sleep', args: ['5'], signal: controller.signal }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.CommandCanceled });
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('reports a command killed from outside as ERR_RC_COMMAND_KILLED', async () => {
    const error = await runner.run({ file: 'sh', args: ['-c', 'kill -KILL $$'] }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.CommandKilled, details: { signal: 'SIGKILL' } });
  });

  it('reports a file that cannot be executed as ERR_RC_COMMAND_SPAWN, not as missing', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'rc-runner-')), 'not-executable');
    writeFileSync(file, '#!/bin/sh\n', { mode: 0o644 });
    const error = await runner.run({ file, args: [] }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.CommandSpawn, details: { errno: 'EACCES' } });
  });

  it('runs with LC_ALL=C, so tools print untranslated messages', async () => {
    const result = await runner.run({ file: 'sh', args: ['-c', 'printf %s "$LC_ALL"'] });
    expect(result.stdout).toBe('C');
  });

  it('formats commands for logs, quoting only what needs it', () => {
    expect(formatCommand({ file: 'nft', args: ['-j', 'list', 'table', 'inet', 'route-controller'] })).toBe(
      'nft -j list table inet route-controller',
    );
    expect(formatCommand({ file: 'iptables', args: ['-m', 'comment', '--comment', 'a b'] })).toBe(
      'iptables -m comment --comment "a b"',
    );
  });
});

describe('runChecked', () => {
  it("returns a zero exit and throws the caller's coded error for any other", async () => {
    const fake = new FakeCommandRunner([
      { file: 'nft', result: { stdout: 'ok' } },
      { file: 'nft', result: { exitCode: 1, stderr: 'Error: nope' } },
    ]);
    const failure = (result: { stderr: string }, command: string) =>
      new RouteControllerError(ErrorCodes.CommandFailed, `${command}: ${result.stderr}`, { hint: 'h' });
    expect((await runChecked(fake, { file: 'nft', args: ['-j'] }, failure)).stdout).toBe('ok');
    await expect(runChecked(fake, { file: 'nft', args: ['-j'] }, failure)).rejects.toMatchObject({
      code: ErrorCodes.CommandFailed,
      message: 'nft -j: Error: nope',
    });
  });
});

describe('PrefixedCommandRunner', () => {
  it('runs every command behind the prefix', async () => {
    const fake = new FakeCommandRunner([
      { file: 'ip', args: ['netns', 'exec', 'lab', 'nft', '--version'], result: { stdout: 'v1' } },
    ]);
    const runner = new PrefixedCommandRunner(fake, ['ip', 'netns', 'exec', 'lab']);
    expect((await runner.run({ file: 'nft', args: ['--version'] })).stdout).toBe('v1');
    fake.assertDone();
  });
});

describe('FakeCommandRunner', () => {
  it('replays scripted results in order', async () => {
    const fake = new FakeCommandRunner()
      .expect({ file: 'nft', args: ['--version'], result: { stdout: 'nftables v1.0.6' } })
      .expect({ file: 'nft', args: (a) => a[0] === '-j', input: /"add"/, result: { exitCode: 1, stderr: 'nope' } });
    expect((await fake.run({ file: 'nft', args: ['--version'] })).stdout).toBe('nftables v1.0.6');
    expect(await fake.run({ file: 'nft', args: ['-j', '-f', '-'], input: '{"add":1}' })).toEqual({
      exitCode: 1,
      stdout: '',
      stderr: 'nope',
    });
    fake.assertDone();
  });

  it('refuses a command out of script, naming both', async () => {
    const fake = new FakeCommandRunner([{ file: 'nft', args: ['--version'] }]);
    const error = await fake.run({ file: 'nft', args: ['list', 'ruleset'] }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.FakeUnexpectedCall });
    expect((error as Error).message).toContain('nft list ruleset');
    expect((error as Error).message).toContain('nft --version');
  });

  it('refuses calls after the script is exhausted and checks it was all used', async () => {
    const fake = new FakeCommandRunner([{ file: 'a' }, { file: 'b' }]);
    await fake.run({ file: 'a', args: [] });
    expect(() => fake.assertDone()).toThrow(expect.objectContaining({ code: ErrorCodes.FakeUnexpectedCall }));
    await fake.run({ file: 'b', args: [] });
    await expect(fake.run({ file: 'c', args: [] })).rejects.toMatchObject({ code: ErrorCodes.FakeUnexpectedCall });
  });

  it('accepts an anyOrder group in either order, each command once, then goes on in order', async () => {
    const script = () => [anyOrder({ file: 'save4' }, { file: 'save6' }), { file: 'restore' }];
    for (const order of [
      ['save4', 'save6'],
      ['save6', 'save4'],
    ]) {
      const fake = new FakeCommandRunner(script());
      for (const file of order) await fake.run({ file, args: [] });
      await fake.run({ file: 'restore', args: [] });
      fake.assertDone();
    }
    const twice = new FakeCommandRunner(script());
    await twice.run({ file: 'save4', args: [] });
    await expect(twice.run({ file: 'save4', args: [] })).rejects.toMatchObject({ code: ErrorCodes.FakeUnexpectedCall });
    const early = new FakeCommandRunner(script());
    await early.run({ file: 'save6', args: [] });
    await expect(early.run({ file: 'restore', args: [] })).rejects.toMatchObject({
      code: ErrorCodes.FakeUnexpectedCall,
    });
    expect(() => early.assertDone()).toThrow(expect.objectContaining({ code: ErrorCodes.FakeUnexpectedCall }));
  });

  it('checks stdin when told to', async () => {
    const fake = new FakeCommandRunner([{ file: 'nft', input: 'exact' }]);
    await expect(fake.run({ file: 'nft', args: [], input: 'other' })).rejects.toMatchObject({
      code: ErrorCodes.FakeUnexpectedCall,
    });
  });

  it('simulates a missing binary and a timeout with the real codes', async () => {
    const fake = new FakeCommandRunner([
      { file: 'nft', fails: 'missing' },
      { file: 'nft', fails: 'timeout' },
    ]);
    await expect(fake.run({ file: 'nft', args: [] })).rejects.toMatchObject({ code: ErrorCodes.CommandNotFound });
    await expect(fake.run({ file: 'nft', args: [] })).rejects.toMatchObject({ code: ErrorCodes.CommandTimeout });
  });
});

describe('RecordingCommandRunner', () => {
  it('records commands and failures', async () => {
    const recording = new RecordingCommandRunner(
      new FakeCommandRunner([{ file: 'a' }, { file: 'b', fails: 'missing' }]),
    );
    await recording.run({ file: 'a', args: [] });
    await recording.run({ file: 'b', args: [] }).catch(() => undefined);
    expect(recording.count()).toBe(2);
    expect(recording.count((r) => r.file === 'b')).toBe(1);
    expect(recording.commands[1]?.error).toBeDefined();
  });
});
