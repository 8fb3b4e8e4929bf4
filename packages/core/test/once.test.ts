import { describe, expect, it, vi } from 'vitest';
import { once } from '../src/once.js';

describe('once', () => {
  it('loads on the first call only and shares the result with concurrent and later calls', async () => {
    const load = vi.fn(async () => ({ id: 1 }));
    const get = once(load);
    expect(load).not.toHaveBeenCalled();
    const [a, b] = await Promise.all([get(), get()]);
    expect(a).toBe(b);
    expect(await get()).toBe(a);
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('forgets a failed load, also one that throws synchronously, so the next call tries again', async () => {
    const load = vi
      .fn<() => Promise<string>>()
      .mockImplementationOnce(() => {
        throw new Error('sync');
      })
      .mockRejectedValueOnce(new Error('async'))
      .mockResolvedValue('loaded');
    const get = once(load);
    await expect(get()).rejects.toThrow('sync');
    await expect(get()).rejects.toThrow('async');
    expect(await get()).toBe('loaded');
    expect(await get()).toBe('loaded');
    expect(load).toHaveBeenCalledTimes(3);
  });
});
