import { afterEach, describe, expect, it, vi } from 'vitest';
import { Backoff } from '../src/util/backoff.js';
import { SaidOnce } from '../src/util/said-once.js';
import { sleep } from '../src/util/sleep.js';
import { TokenBucket } from '../src/util/token-bucket.js';

describe('Backoff', () => {
  it('doubles from initialMs up to maxMs, and reset() starts over', () => {
    const backoff = new Backoff({ initialMs: 800, maxMs: 30_000 });
    expect([1, 2, 3, 4, 5, 6, 7].map(() => backoff.next())).toEqual([800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000]);
    expect(backoff.failures).toBe(7);
    backoff.reset();
    expect(backoff.next()).toBe(800);
  });

  it('jitter shortens each delay by up to its fraction and never lengthens one past maxMs', () => {
    const draws = [0, 0.5, 0.999];
    const backoff = new Backoff({ initialMs: 1_000, maxMs: 1_000, jitter: 0.5, random: () => draws.shift() ?? 0 });
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([1_000, 750, 500]);
  });

  it('starts over from initialMs when the last delay was asked for longer ago than resetAfterMs', () => {
    let now = 0;
    const backoff = new Backoff({ initialMs: 800, maxMs: 30_000, resetAfterMs: 120_000, now: () => now });
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([800, 1_600, 3_200]);
    now += 120_000; // exactly the window: still failing in a row
    expect(backoff.next()).toBe(6_400);
    now += 120_001;
    expect(backoff.next()).toBe(800);
  });
});

describe('SaidOnce', () => {
  it('is news the first time, not when repeated, and again when what is said changes', () => {
    const said = new SaidOnce();
    expect(said.said('kubeadm', 'forbidden')).toBe(true);
    expect(said.said('kubeadm', 'forbidden')).toBe(false);
    expect(said.said('servicecidr', 'forbidden')).toBe(true);
    expect(said.said('kubeadm', 'synced')).toBe(true);
    expect(said.said('kubeadm', 'forbidden')).toBe(true);
    said.forget('kubeadm');
    expect(said.said('kubeadm', 'forbidden')).toBe(true);
  });
});

describe('sleep', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('resolves after its time, or at once when the signal aborts, and never rejects', async () => {
    vi.useFakeTimers();
    const woke = vi.fn();
    void sleep(1_000).then(woke);
    await vi.advanceTimersByTimeAsync(999);
    expect(woke).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(woke).toHaveBeenCalledTimes(1);

    const abort = new AbortController();
    const early = vi.fn();
    void sleep(60_000, abort.signal).then(early);
    abort.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(early).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
    await expect(sleep(60_000, abort.signal)).resolves.toBeUndefined();
  });
});

describe('TokenBucket', () => {
  it('gives its burst at once, then one token per refill interval, never more than the burst', () => {
    const bucket = new TokenBucket(3, 1_000);
    expect(bucket.take(0, 3)).toBe(true);
    expect(bucket.take(0)).toBe(false);
    expect(bucket.available(999)).toBe(0);
    expect(bucket.take(1_000)).toBe(true);
    // A long quiet spell refills up to the burst only.
    expect(bucket.available(60_000)).toBe(3);
    expect(bucket.take(60_000, 4)).toBe(false);
    expect(bucket.available(60_000)).toBe(3);
  });
});
