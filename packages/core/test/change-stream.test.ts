import { describe, expect, it } from 'vitest';
import {
  type ChangeLineKind,
  type ChangeStreamSpec,
  netlinkSubscribed,
  runChangeStream,
  waitForNetlinkSubscription,
} from '../src/change-stream.js';
import { ErrorCodes } from '../src/errors.js';
import type { ChangeListener } from '../src/firewall-backend.js';
import { FakeStreamRunner } from '../src/testing/fake-stream-runner.js';

function recorder() {
  const calls: string[] = [];
  const listener: ChangeListener = {
    ready: () => calls.push('ready'),
    change: (what) => calls.push(`change ${what}`),
    other: () => calls.push('other'),
    lost: (detail) => calls.push(`lost ${detail}`),
    diagnostic: (line) => calls.push(`stderr ${line}`),
  };
  return { calls, listener };
}

const classify = (line: string): ChangeLineKind =>
  line.startsWith('#') ? (line.includes('lost') ? 'lost' : 'ignore') : line.includes('ours') ? 'ours' : 'other';

const spec: ChangeStreamSpec = { file: 'monitor', args: ['--json'], classify, describe: (line) => line.toUpperCase() };
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('runChangeStream', () => {
  it('sorts lines into ours, other, lost and noise, and tells why the process ended', async () => {
    const runner = new FakeStreamRunner();
    const { calls, listener } = recorder();
    const running = runChangeStream(runner, spec, listener, new AbortController().signal);
    const stream = runner.current;
    await tick(); // spawned
    stream?.emit('a change of ours', 'someone else', '# ERROR: We lost some netlink events!', '# a comment');
    stream?.stderr('rule without statements?!');
    stream?.end({ exitCode: 134 });
    const end = await running;
    expect(calls).toEqual([
      'ready',
      'stderr rule without statements?!',
      'change A CHANGE OF OURS',
      'other',
      'lost ERROR: We lost some netlink events!',
    ]);
    expect(end).toEqual({ stopped: false, reason: 'monitor --json exited with code 134: rule without statements?!' });
  });

  it('is ready only once the process has subscribed', async () => {
    const runner = new FakeStreamRunner();
    const { calls, listener } = recorder();
    let subscribe!: (yes: boolean) => void;
    const subscribed = new Promise<boolean>((resolve) => {
      subscribe = resolve;
    });
    const running = runChangeStream(
      runner,
      { ...spec, subscribed: () => subscribed },
      listener,
      new AbortController().signal,
    );
    runner.current?.emit('ours, before the subscription was seen');
    await tick();
    expect(calls).toEqual(['change OURS, BEFORE THE SUBSCRIPTION WAS SEEN']);
    subscribe(true);
    await tick();
    expect(calls.at(-1)).toBe('ready');
    runner.current?.end();
    await running;
  });

  it('never reports ready for a process that died before it subscribed', async () => {
    const runner = new FakeStreamRunner();
    const { calls, listener } = recorder();
    let subscribe!: (yes: boolean) => void;
    const subscribed = new Promise<boolean>((resolve) => {
      subscribe = resolve;
    });
    const running = runChangeStream(
      runner,
      { ...spec, subscribed: () => subscribed },
      listener,
      new AbortController().signal,
    );
    runner.current?.end({ exitCode: 1 });
    await running;
    subscribe(false);
    await tick();
    expect(calls).not.toContain('ready');
  });

  it('resolves with stopped when its signal aborts, having stopped the process', async () => {
    const runner = new FakeStreamRunner();
    const controller = new AbortController();
    const running = runChangeStream(runner, spec, recorder().listener, controller.signal);
    controller.abort();
    expect(await running).toMatchObject({ stopped: true });
    expect(runner.current?.stopped).toBe(true);
    expect(runner.current?.ended).toBe(true);
  });

  it('rejects with the coded error when the process cannot start', async () => {
    const runner = new FakeStreamRunner().failNext('missing');
    const { calls, listener } = recorder();
    await expect(runChangeStream(runner, spec, listener, new AbortController().signal)).rejects.toMatchObject({
      code: ErrorCodes.CommandNotFound,
    });
    expect(calls).toEqual([]);
  });
});

describe('netlinkSubscribed', () => {
  const table = [
    'sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode',
    '000000000a86e1fc 0   0          00000000 0        0        0     2        0        1303595 ',
    '00000000f4ec1f5b 12  8270       00000040 0        0        0     2        0        1302808 ',
    '00000000f4ec1f5c 12  8271       00000100 0        0        0     2        0        1302809 ',
  ].join('\n');
  const nftables = { protocol: 12, groups: 0x40 };

  it('finds the socket of the pid with the protocol and a group bit set', () => {
    expect(netlinkSubscribed(table, 8270, nftables)).toBe(true);
    expect(netlinkSubscribed(table, 8271, nftables)).toBe(false); // trace group only
    expect(netlinkSubscribed(table, 8272, nftables)).toBe(false);
    expect(netlinkSubscribed(table, 8270, { protocol: 0, groups: 0x40 })).toBe(false);
  });

  it('gives up for a process that is not there', async () => {
    expect(await waitForNetlinkSubscription(2 ** 30, nftables)).toBe(false);
  });
});
