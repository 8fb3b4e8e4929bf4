import { afterEach, describe, expect, it, vi } from 'vitest';
import { waitForNetlinkSubscription } from '../src/change-stream.js';

const reads = vi.hoisted(() => ({ count: 0 }));

// /proc/<pid>/net/netlink of a process that never subscribes: only the header.
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...actual,
    readFile: vi.fn(async () => {
      reads.count += 1;
      return 'sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n';
    }),
  };
});

describe('waitForNetlinkSubscription', () => {
  afterEach(() => vi.useRealTimers());

  it('looks at /proc soon, then at most every 40 ms: never a tight poll', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const waiting = waitForNetlinkSubscription(4242, { protocol: 12, groups: 0x40, timeoutMs: 2_000 });
    await vi.advanceTimersByTimeAsync(2_100);
    expect(await waiting).toBe(false);
    // 5, 10, 20, then 40 ms apart over 2 s: about 53 looks (a 2 ms poll made about 1,000).
    expect(reads.count).toBeGreaterThan(1);
    expect(reads.count).toBeLessThanOrEqual(2_000 / 40 + 5);
  });
});
