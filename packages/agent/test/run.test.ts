import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { STOP_DEADLINE_MS, stopWithin } from '../src/commands/run.js';

const log = pino({ level: 'silent' });

describe('the stop deadline', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('a stop within the deadline exits 0', async () => {
    const exit = vi.fn();
    const code = stopWithin({ stop: () => new Promise((resolve) => setTimeout(resolve, 1_000)) }, 'SIGTERM', log, {
      exit,
    });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await code).toBe(0);
    expect(exit).not.toHaveBeenCalled();
  });

  it('aborts the signal it gave the stop (and so its cleanup) at the deadline, and exits 1', async () => {
    const exit = vi.fn();
    let given: AbortSignal | undefined;
    // A cleanup waiting for the xtables lock: it ends when its signal aborts.
    const stop = (_signal: string, deadline?: AbortSignal) => {
      given = deadline;
      return new Promise<void>((resolve) => deadline?.addEventListener('abort', () => resolve(), { once: true }));
    };
    const code = stopWithin({ stop }, 'SIGTERM', log, { exit });
    await vi.advanceTimersByTimeAsync(STOP_DEADLINE_MS - 1);
    expect(given?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(given?.aborted).toBe(true);
    expect(await code).toBe(1);
    expect(exit).not.toHaveBeenCalled();
  });

  it('ends the process with 1 when the stop does not return even after the deadline', async () => {
    const exit = vi.fn();
    void stopWithin({ stop: () => new Promise<void>(() => {}) }, 'SIGTERM', log, { exit });
    await vi.advanceTimersByTimeAsync(STOP_DEADLINE_MS + 999);
    expect(exit).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(exit).toHaveBeenCalledWith(1);
  });
});
