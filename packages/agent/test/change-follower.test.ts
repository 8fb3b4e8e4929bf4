import { commandNotFound, ErrorCodes, RouteControllerError } from '@route-controller/core';
import { MEMORY_CAPABILITIES, MemoryBackend, MemoryKernel } from '@route-controller/core/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  CHURN_EVENTS,
  CHURN_SAMPLE_INITIAL_MS,
  CHURN_WINDOW_MS,
  ChangeFollower,
  EVENT_DEBOUNCE_MS,
  EVENT_MAX_WAIT_MS,
  EVENT_REPAIR_LIMIT,
  EVENT_REPAIR_PAUSE_INITIAL_MS,
  POLL_INTERVAL_MS,
  STREAM_RESTART_INITIAL_MS,
} from '../src/reconcile/change-follower.js';
import { scrape } from './metrics-text.js';
import { setup } from './reconcile-helpers.js';

const RULE = 'route-controller/rule/ipv4';

/** A reconciler and a change follower over one memory kernel, resync one hour: only events repair. */
async function follow(options: { events?: boolean } = {}) {
  const kernel = new MemoryKernel();
  const backend = new MemoryBackend(kernel, { capabilities: { events: options.events ?? true } });
  const t = setup('1h', kernel, backend);
  const watch = vi.spyOn(backend, 'watchChanges');
  const follower = new ChangeFollower(t.config, backend, t.reconciler, t.metrics, t.logger);
  t.source.set('10.96.0.0/16');
  await t.reconciler.start();
  follower.start();
  // The stream is up, and its start-up reconcile (which finds nothing to do) has run.
  await vi.advanceTimersByTimeAsync(0);
  const events = () => t.outcomes.filter((o) => o.trigger === 'event');
  const messages = () => t.logs.map((line) => String(line.msg));
  return { ...t, follower, watch, events, messages };
}

const drift = (kernel: MemoryKernel) => kernel.seed((objects) => objects.delete(RULE));

describe('ChangeFollower', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('repairs drift from a change event, without waiting for the resync, and counts it', async () => {
    const t = await follow();
    expect(t.logs).toContainEqual(
      expect.objectContaining({
        msg: 'following kernel change events: drift is repaired as it happens, the resync stays as a safety net',
        resyncInterval: '1h',
      }),
    );
    expect(await scrape(t.metrics, 'route_controller_change_events_up')).toBe(1);
    const writes = t.kernel.writes;
    drift(t.kernel);
    expect(t.kernel.objects.has(RULE)).toBe(false);
    await vi.advanceTimersByTimeAsync(EVENT_DEBOUNCE_MS);
    expect(t.kernel.objects.has(RULE)).toBe(true);
    expect(t.kernel.writes).toBe(writes + 1);
    // The repair's own echo: one more reconcile, which reads and writes nothing.
    await vi.advanceTimersByTimeAsync(EVENT_DEBOUNCE_MS);
    expect(t.events().at(-1)).toMatchObject({ changed: false });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(t.kernel.writes).toBe(writes + 1);
    expect(t.events().filter((o) => o.driftRepaired)).toHaveLength(1);
    expect(await scrape(t.metrics, 'route_controller_drift_repairs_total')).toBe(1);
    expect(await scrape(t.metrics, 'route_controller_change_events_total', 'scope="ours"')).toBe(2);
    await t.follower.stop();
    await t.reconciler.stop();
  });

  it('reconciles once per burst: the debounce waits for the events of a transaction to end', async () => {
    const t = await follow();
    const runs = t.events().length;
    for (let i = 0; i < 5; i += 1) {
      t.kernel.seed((objects) =>
        objects.set(`route-controller/noise/${i}`, { owner: 'route-controller', kind: 'rule' }),
      );
      await vi.advanceTimersByTimeAsync(EVENT_DEBOUNCE_MS / 4);
    }
    expect(t.events()).toHaveLength(runs);
    await vi.advanceTimersByTimeAsync(EVENT_DEBOUNCE_MS);
    expect(t.events()).toHaveLength(runs + 1);
    await t.follower.stop();
    await t.reconciler.stop();
  });

  it('still reconciles while events of ours never pause, at most EVENT_MAX_WAIT_MS after the first', async () => {
    const t = await follow();
    const runs = t.events().length;
    for (let i = 0; i < 30; i += 1) {
      t.kernel.seed((objects) => objects.set('route-controller/noise', { owner: 'route-controller', kind: 'rule' }));
      await vi.advanceTimersByTimeAsync(EVENT_DEBOUNCE_MS / 2);
    }
    // 300 ms of events 10 ms apart: a plain trailing debounce would not have fired once.
    expect(t.events().length - runs).toBeGreaterThanOrEqual(Math.floor(300 / EVENT_MAX_WAIT_MS) - 1);
    await t.follower.stop();
    await t.reconciler.stop();
  });

  it('ignores changes elsewhere, counting them', async () => {
    const t = await follow();
    const runs = t.outcomes.length;
    for (let i = 0; i < 50; i += 1)
      t.kernel.seed((objects) => objects.set(`kube-proxy/${i}`, { owner: 'kube-proxy', kind: 'rule' }));
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.outcomes).toHaveLength(runs);
    expect(await scrape(t.metrics, 'route_controller_change_events_total', 'scope="other"')).toBe(50);
    await t.follower.stop();
    await t.reconciler.stop();
  });

  it('restarts a stream that ended with backoff, and reconciles after each restart', async () => {
    const t = await follow();
    expect(t.watch).toHaveBeenCalledTimes(1);
    // Changes made while nobody listens are found by the reconcile that follows the restart.
    t.kernel.endStreams('nft -j monitor ruleset exited with code 134');
    expect(await scrape(t.metrics, 'route_controller_change_events_up')).toBe(0);
    drift(t.kernel);
    await vi.advanceTimersByTimeAsync(STREAM_RESTART_INITIAL_MS - 1);
    expect(t.watch).toHaveBeenCalledTimes(1);
    expect(t.kernel.objects.has(RULE)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.watch).toHaveBeenCalledTimes(2);
    expect(t.kernel.objects.has(RULE)).toBe(true);
    expect(await scrape(t.metrics, 'route_controller_change_events_up')).toBe(1);
    // It ends again at once: the next restart waits twice as long.
    t.kernel.endStreams('again');
    await vi.advanceTimersByTimeAsync(2 * STREAM_RESTART_INITIAL_MS - 1);
    expect(t.watch).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.watch).toHaveBeenCalledTimes(3);
    expect(await scrape(t.metrics, 'route_controller_change_events_restarts_total')).toBe(2);
    expect(
      t.logs
        .filter((line) => line.msg === 'kernel change events stopped; restarting, the resync repairs drift meanwhile')
        .map((line) => [line.reason, line.restartInMs]),
    ).toEqual([
      ['nft -j monitor ruleset exited with code 134', STREAM_RESTART_INITIAL_MS],
      ['again', 2 * STREAM_RESTART_INITIAL_MS],
    ]);
    expect(t.messages()).toContain('kernel change events resumed; reconciling for what was missed');
    await t.follower.stop();
    await t.reconciler.stop();
  });

  it('reconciles when events were lost', async () => {
    const t = await follow();
    const runs = t.events().length;
    drift(t.kernel);
    // The drift's own event never arrives (lost), only the overflow notice.
    t.kernel.seed((objects) => objects.set(RULE, { owner: 'route-controller', kind: 'rule', action: 'drop' }));
    t.kernel.seed((objects) => objects.delete(RULE));
    t.kernel.loseEvents();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.events().length).toBeGreaterThan(runs);
    expect(t.kernel.objects.has(RULE)).toBe(true);
    expect(t.messages().some((m) => m.startsWith('kernel change events were lost'))).toBe(true);
    await t.follower.stop();
    await t.reconciler.stop();
  });

  it('gives up, once and saying why, when the monitor binary is missing: the resync is left', async () => {
    const kernel = new MemoryKernel();
    kernel.streamFailure = commandNotFound('nft');
    const t = setup('30s', kernel);
    const watch = vi.spyOn(t.backend, 'watchChanges');
    const follower = new ChangeFollower(t.config, t.backend, t.reconciler, t.metrics, t.logger);
    follower.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(watch).toHaveBeenCalledTimes(1);
    const warning = t.logs.find((line) => String(line.msg).startsWith('no kernel change events'));
    expect(warning).toMatchObject({
      code: ErrorCodes.CommandNotFound,
      msg: 'no kernel change events: drift is repaired by the resync only',
      resyncInterval: '30s',
    });
    expect(await scrape(t.metrics, 'route_controller_change_events_up')).toBe(0);
    await follower.stop();
  });

  it('gives up too when the backend turns out to have no events after all', async () => {
    const kernel = new MemoryKernel();
    kernel.streamFailure = new RouteControllerError(ErrorCodes.FirewallUnsupported, 'no events here');
    const t = setup('30s', kernel);
    const watch = vi.spyOn(t.backend, 'watchChanges');
    const follower = new ChangeFollower(t.config, t.backend, t.reconciler, t.metrics, t.logger);
    follower.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(watch).toHaveBeenCalledTimes(1);
    await follower.stop();
  });

  it('a backend without events: says drift waits for the resync, and never watches', async () => {
    const t = await follow({ events: false });
    expect(t.watch).not.toHaveBeenCalled();
    expect(t.logs).toContainEqual(
      expect.objectContaining({
        msg: 'no kernel change events with this backend: drift is repaired by the resync',
        backend: 'memory',
        resyncInterval: '1h',
      }),
    );
    drift(t.kernel);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(t.kernel.objects.has(RULE)).toBe(false);
    await t.follower.stop();
    await t.reconciler.stop();
  });

  it('pauses repairs from events when someone undoes each one at once, and resumes after the pause', async () => {
    const t = await follow();
    // Another process that deletes our rule as soon as it is back: a fight no one wins.
    let fighting = true;
    t.reconciler.onOutcome((outcome) => {
      if (fighting && outcome.changed) queueMicrotask(() => drift(t.kernel));
    });
    const writes = t.kernel.writes;
    drift(t.kernel);
    await vi.advanceTimersByTimeAsync(2_000);
    const repairs = t.kernel.writes - writes;
    expect(repairs).toBe(EVENT_REPAIR_LIMIT + 1);
    expect(await scrape(t.metrics, 'route_controller_change_event_repairs_paused_total')).toBe(1);
    const warning = t.logs.find((line) =>
      String(line.msg).startsWith('our rules were changed again after each repair'),
    );
    expect(warning).toMatchObject({ level: 40, pauseMs: EVENT_REPAIR_PAUSE_INITIAL_MS, resyncInterval: '1h' });
    // The other process gives up; while paused, its last change waits.
    fighting = false;
    await vi.advanceTimersByTimeAsync(EVENT_REPAIR_PAUSE_INITIAL_MS - 3_000);
    expect(t.kernel.objects.has(RULE)).toBe(false);
    expect(t.kernel.writes - writes).toBe(repairs);
    // After the pause the missed events are acted on, once.
    await vi.advanceTimersByTimeAsync(2_000);
    expect(t.kernel.objects.has(RULE)).toBe(true);
    expect(t.kernel.writes - writes).toBe(repairs + 1);
    await t.follower.stop();
    await t.reconciler.stop();
  });

  describe('foreign churn', () => {
    /** Another tool's changes, each one event, `count` of them within `overMs`. */
    const churn = async (t: Awaited<ReturnType<typeof follow>>, count: number, overMs: number) => {
      for (let i = 0; i < count; i += 1) {
        t.kernel.seed((objects) => objects.set(`kube-proxy/${i}`, { owner: 'kube-proxy', kind: 'rule' }));
        await vi.advanceTimersByTimeAsync(overMs / count);
      }
    };
    const mode = async (t: Awaited<ReturnType<typeof follow>>) =>
      (await scrape(t.metrics, 'route_controller_change_follow_mode', 'mode="polling"')) === 1 ? 'polling' : 'events';
    const polls = (t: Awaited<ReturnType<typeof follow>>) => t.outcomes.filter((o) => o.trigger === 'poll');

    it('over CHURN_EVENTS a window, stops the stream and polls our table, repairing drift within a second', async () => {
      const t = await follow();
      expect(await mode(t)).toBe('events');
      await churn(t, CHURN_EVENTS + 1, CHURN_WINDOW_MS / 2);
      expect(await (t.watch.mock.results[0]?.value as Promise<{ stopped: boolean }>)).toMatchObject({ stopped: true });
      expect(await mode(t)).toBe('polling');
      expect(await scrape(t.metrics, 'route_controller_change_events_up')).toBe(0);
      expect(await scrape(t.metrics, 'route_controller_change_events_churn_pauses_total')).toBe(1);
      expect(t.logs).toContainEqual(
        expect.objectContaining({
          msg: 'change events paused for foreign churn; polling our table instead',
          pollIntervalMs: POLL_INTERVAL_MS,
        }),
      );
      // No stream to tell: the next poll finds the drift.
      drift(t.kernel);
      await vi.advanceTimersByTimeAsync(POLL_INTERVAL_MS);
      expect(t.kernel.objects.has(RULE)).toBe(true);
      expect(polls(t).filter((o) => o.driftRepaired)).toHaveLength(1);
      await t.follower.stop();
      await t.reconciler.stop();
    });

    it('a trickle below the bound keeps following events', async () => {
      const t = await follow();
      // Half the bound every window, for five windows.
      await churn(t, (CHURN_EVENTS / 2) * 5, CHURN_WINDOW_MS * 5);
      expect(t.watch).toHaveBeenCalledTimes(1);
      expect(await mode(t)).toBe('events');
      expect(polls(t)).toEqual([]);
      await t.follower.stop();
      await t.reconciler.stop();
    });

    it('samples the stream again with backoff while the churn goes on, and goes back to events once a sample is quiet', async () => {
      // No jitter: each sample starts exactly when its backoff says.
      vi.spyOn(Math, 'random').mockReturnValue(0);
      const t = await follow();
      await churn(t, CHURN_EVENTS + 1, CHURN_WINDOW_MS / 2);
      expect(t.watch).toHaveBeenCalledTimes(1);
      // The first sample, CHURN_SAMPLE_INITIAL_MS later at most: the churn goes on, and ends it at once.
      await vi.advanceTimersByTimeAsync(CHURN_SAMPLE_INITIAL_MS);
      expect(t.watch).toHaveBeenCalledTimes(2);
      await churn(t, CHURN_EVENTS + 1, CHURN_WINDOW_MS / 2);
      expect(await mode(t)).toBe('polling');
      // The next sample waits twice as long.
      await vi.advanceTimersByTimeAsync(2 * CHURN_SAMPLE_INITIAL_MS - CHURN_WINDOW_MS);
      expect(t.watch).toHaveBeenCalledTimes(2);
      await vi.advanceTimersByTimeAsync(CHURN_WINDOW_MS);
      expect(t.watch).toHaveBeenCalledTimes(3);
      // Quiet now: after a whole window of the sample, events again, and no more polls.
      await vi.advanceTimersByTimeAsync(CHURN_WINDOW_MS);
      expect(await mode(t)).toBe('events');
      expect(await scrape(t.metrics, 'route_controller_change_events_up')).toBe(1);
      expect(t.logs).toContainEqual(expect.objectContaining({ msg: 'change events resumed after foreign churn' }));
      const polled = polls(t).length;
      expect(polled).toBeGreaterThan(0);
      await vi.advanceTimersByTimeAsync(10 * POLL_INTERVAL_MS);
      expect(polls(t)).toHaveLength(polled);
      // And events repair at once again.
      drift(t.kernel);
      await vi.advanceTimersByTimeAsync(EVENT_DEBOUNCE_MS);
      expect(t.kernel.objects.has(RULE)).toBe(true);
      await t.follower.stop();
      await t.reconciler.stop();
    });
  });

  it('stop() ends the stream and nothing is triggered after it', async () => {
    const t = await follow();
    const ended = t.watch.mock.results[0]?.value as Promise<{ stopped: boolean }>;
    await t.follower.stop();
    expect(await ended).toMatchObject({ stopped: true });
    const runs = t.outcomes.length;
    drift(t.kernel);
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.outcomes).toHaveLength(runs);
    expect(await scrape(t.metrics, 'route_controller_change_events_up')).toBe(0);
    await t.reconciler.stop();
  });

  it('the memory backend claims events, as the follower needs', () => {
    expect(MEMORY_CAPABILITIES.events).toBe(true);
  });
});
