import {
  type ChangeListener,
  type ChangeStreamEnd,
  ErrorCodes,
  errorMessage,
  type FirewallBackend,
  isRouteControllerError,
} from '@route-controller/core';
import type { AgentConfig } from '../config/config.js';
import { formatDuration } from '../config/duration.js';
import { inject, injectable } from '../di.js';
import type { Logger } from '../observability/logger.js';
import { AgentMetrics } from '../observability/metrics.js';
import { TOKENS } from '../tokens.js';
import { Backoff } from '../util/backoff.js';
import { sleep } from '../util/sleep.js';
import { type ReconcileOutcome, Reconciler, type ReconcileTrigger } from './reconciler.js';

/** The events of one transaction reach us within about a millisecond: 20 ms after the last, it is over. */
export const EVENT_DEBOUNCE_MS = 20;
/** Events of ours that never pause for the debounce still reconcile this soon after the first. */
export const EVENT_MAX_WAIT_MS = 100;
/** A stream that ends by itself is started again after this, doubling up to STREAM_RESTART_MAX_MS. */
export const STREAM_RESTART_INITIAL_MS = 250;
export const STREAM_RESTART_MAX_MS = 30_000;
/** A stream that stayed up this long was healthy: if it ends, it is restarted quickly again. */
export const STREAM_HEALTHY_MS = 60_000;
/**
 * More event-driven applies that changed something than EVENT_REPAIR_LIMIT within
 * EVENT_REPAIR_WINDOW_MS: someone undoes every repair at once (or we cannot read what we write), so
 * repairing from events would only loop. They pause, from EVENT_REPAIR_PAUSE_INITIAL_MS doubling up
 * to EVENT_REPAIR_PAUSE_MAX_MS; the resync goes on repairing at its own pace.
 */
export const EVENT_REPAIR_LIMIT = 10;
export const EVENT_REPAIR_WINDOW_MS = 10_000;
export const EVENT_REPAIR_PAUSE_INITIAL_MS = 10_000;
export const EVENT_REPAIR_PAUSE_MAX_MS = 300_000;
/** What the stream's tool says on stderr is logged at most this often; the rest is counted. */
export const DIAGNOSTIC_LOG_INTERVAL_MS = 60_000;
/**
 * Foreign churn: more events than this within one CHURN_WINDOW_MS (most of them other tools'
 * changes, each decoded by the monitor and read by us). The monitor is then stopped, and our own
 * table polled every POLL_INTERVAL_MS instead: a read of a few rules costs less than decoding
 * every event of every table, and still repairs drift within a second.
 */
export const CHURN_EVENTS = 100;
export const CHURN_WINDOW_MS = 1_000;
export const POLL_INTERVAL_MS = 700;
/**
 * While polling, the monitor is started again now and then to see whether the churn is over: first
 * after CHURN_SAMPLE_INITIAL_MS, backing off to CHURN_SAMPLE_MAX_MS while it goes on. A sample ends
 * as soon as the churn shows again; one that stays quiet for a CHURN_WINDOW_MS is the way back.
 */
export const CHURN_SAMPLE_INITIAL_MS = 5_000;
export const CHURN_SAMPLE_MAX_MS = 60_000;

/** How drift is noticed: events as they come, polls of our table during foreign churn. */
export type FollowMode = 'events' | 'polling';

/** What the follower needs of the reconciler. */
export interface ReconcileTarget {
  trigger(reason: ReconcileTrigger): Promise<void>;
  onOutcome(listener: (outcome: ReconcileOutcome) => void): void;
}

/**
 * Repairs drift the moment it happens, where the kernel says so: follows the backend's change
 * events (one long-lived `nft -j monitor ruleset`), and asks the reconciler to run when a change
 * touches our objects, debounced. Events only trigger: the reconciler reads the kernel, and writes
 * only when it is not in step, so the echo of our own writes costs one read. The stream is
 * restarted with backoff when it ends, and every (re)start reconciles once, for what happened while
 * nobody was listening. The resync stays as the safety net.
 *
 * Its cost is bounded whatever other tools do: when the event rate passes CHURN_EVENTS a
 * CHURN_WINDOW_MS, the stream is stopped and our table polled instead (see POLL_INTERVAL_MS), and
 * events come back once a sample of the stream finds it quiet.
 */
@injectable()
export class ChangeFollower {
  readonly #log: Logger;
  readonly #abort = new AbortController();
  readonly #restarts = new Backoff({ initialMs: STREAM_RESTART_INITIAL_MS, maxMs: STREAM_RESTART_MAX_MS });
  readonly #pauses = new Backoff({ initialMs: EVENT_REPAIR_PAUSE_INITIAL_MS, maxMs: EVENT_REPAIR_PAUSE_MAX_MS });
  #running: Promise<void> | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #firstPendingAt: number | undefined;
  #lastChange = 'none yet';
  #subscribedBefore = false;
  /** When recent event-driven applies changed something. */
  #repairs: number[] = [];
  #pausedUntil = 0;
  #lastPauseAt = Number.NEGATIVE_INFINITY;
  #pauseTimer: NodeJS.Timeout | undefined;
  #missedWhilePaused = false;
  #noisy = { loggedAt: Number.NEGATIVE_INFINITY, suppressed: 0 };
  #mode: FollowMode = 'events';
  /** Ends the current run of the stream alone (churn), not the follower. */
  #run: AbortController | undefined;
  #window = { startedAt: Number.NEGATIVE_INFINITY, events: 0 };
  readonly #samples = new Backoff({ initialMs: CHURN_SAMPLE_INITIAL_MS, maxMs: CHURN_SAMPLE_MAX_MS, jitter: 0.2 });
  #pollTimer: NodeJS.Timeout | undefined;
  #quietTimer: NodeJS.Timeout | undefined;
  #pausedAt = 0;

  constructor(
    @inject(TOKENS.Config) private readonly config: AgentConfig,
    @inject(TOKENS.Backend) private readonly backend: FirewallBackend,
    @inject(Reconciler) private readonly reconciler: ReconcileTarget,
    @inject(AgentMetrics) private readonly metrics: AgentMetrics,
    @inject(TOKENS.Logger) logger: Logger,
  ) {
    this.#log = logger.child({ component: 'events' });
  }

  /** Starts following, in the background; says so, or says why drift waits for the resync. */
  start(): void {
    if (!this.backend.capabilities.events || !this.backend.watchChanges) {
      this.#log.info(
        { backend: this.backend.name, resyncInterval: this.#resync() },
        'no kernel change events with this backend: drift is repaired by the resync',
      );
      return;
    }
    this.reconciler.onOutcome((outcome) => this.#outcome(outcome));
    this.#running = this.#follow(this.backend.watchChanges.bind(this.backend));
  }

  /** Ends the stream (its process with it) and waits until it has ended. */
  async stop(): Promise<void> {
    this.#abort.abort();
    clearTimeout(this.#debounce);
    clearTimeout(this.#pauseTimer);
    clearInterval(this.#pollTimer);
    clearTimeout(this.#quietTimer);
    await this.#running;
  }

  async #follow(watch: NonNullable<FirewallBackend['watchChanges']>): Promise<void> {
    const { signal } = this.#abort;
    this.metrics.changeFollowMode(this.#mode);
    while (!signal.aborted) {
      const started = Date.now();
      const run = new AbortController();
      const stopRun = () => run.abort();
      signal.addEventListener('abort', stopRun, { once: true });
      this.#run = run;
      this.#window = { startedAt: Number.NEGATIVE_INFINITY, events: 0 };
      let end: ChangeStreamEnd | undefined;
      let failure: unknown;
      try {
        end = await watch(this.#listener, run.signal);
      } catch (error) {
        failure = error;
      } finally {
        signal.removeEventListener('abort', stopRun);
        this.#run = undefined;
        // A sample that ended, whyever, is no sign that the churn is over.
        clearTimeout(this.#quietTimer);
      }
      this.metrics.changeStream(false);
      if (signal.aborted) return;
      if (run.signal.aborted) {
        // We ended it, for churn: polls repair meanwhile; sample the stream again later.
        await sleep(this.#samples.next(), signal);
        continue;
      }
      if (
        isRouteControllerError(failure, ErrorCodes.CommandNotFound) ||
        isRouteControllerError(failure, ErrorCodes.FirewallUnsupported)
      ) {
        // Retrying cannot install the monitor, nor give the backend events: say so once, and leave
        // drift to the resync.
        this.#log.warn(
          {
            backend: this.backend.name,
            err: failure,
            code: failure.code,
            hint: failure.hint,
            resyncInterval: this.#resync(),
          },
          'no kernel change events: drift is repaired by the resync only',
        );
        this.#endPolling();
        return;
      }
      if (Date.now() - started >= STREAM_HEALTHY_MS) this.#restarts.reset();
      const delay = this.#restarts.next();
      this.metrics.changeStreamRestarted();
      this.#log.warn(
        { backend: this.backend.name, err: failure, reason: end?.reason ?? errorMessage(failure), restartInMs: delay },
        'kernel change events stopped; restarting, the resync repairs drift meanwhile',
      );
      await sleep(delay, signal);
    }
  }

  /**
   * Counts one event of another tool's (our own writes are bounded by us, and a fight over our rules
   * has its own cap); too many in a window is churn. Called per event: keep it cheap.
   */
  #counted(): void {
    const now = performance.now();
    const window = this.#window;
    if (now - window.startedAt >= CHURN_WINDOW_MS) {
      window.startedAt = now;
      window.events = 0;
    }
    window.events += 1;
    if (window.events > CHURN_EVENTS && this.#live()) this.#churning(now - window.startedAt);
  }

  /** Whether a run of the stream is up and not being ended. */
  #live(): boolean {
    return this.#run !== undefined && !this.#run.signal.aborted;
  }

  /** Stops the stream for churn (at once, or again after a sample), and polls our table meanwhile. */
  #churning(windowMs: number): void {
    this.#run?.abort();
    clearTimeout(this.#quietTimer);
    const eventsPerSecond = Math.round((this.#window.events * 1000) / Math.max(windowMs, 1));
    if (this.#mode === 'polling') {
      this.#log.debug({ backend: this.backend.name, eventsPerSecond }, 'foreign churn goes on');
      return;
    }
    this.#mode = 'polling';
    this.#pausedAt = Date.now();
    this.metrics.changeFollowMode('polling');
    this.#log.info(
      { backend: this.backend.name, eventsPerSecond, pollIntervalMs: POLL_INTERVAL_MS },
      'change events paused for foreign churn; polling our table instead',
    );
    this.#pollTimer = setInterval(() => this.#request('poll'), POLL_INTERVAL_MS);
  }

  /** A sample of the stream that stayed quiet for a whole window: back to events. */
  #quiet(): void {
    if (this.#mode !== 'polling' || !this.#live()) return;
    this.#samples.reset();
    this.#log.info(
      { backend: this.backend.name, pausedMs: Date.now() - this.#pausedAt },
      'change events resumed after foreign churn',
    );
    this.#endPolling();
  }

  #endPolling(): void {
    clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
    this.#mode = 'events';
    this.metrics.changeFollowMode('events');
  }

  readonly #listener: ChangeListener = {
    ready: () => {
      this.metrics.changeStream(true);
      if (this.#mode === 'polling') {
        // A sample: back to events if it stays quiet for a window, else #churning ends it again.
        clearTimeout(this.#quietTimer);
        if (this.#live()) this.#quietTimer = setTimeout(() => this.#quiet(), CHURN_WINDOW_MS);
      } else if (this.#subscribedBefore) {
        this.#log.info({ backend: this.backend.name }, 'kernel change events resumed; reconciling for what was missed');
      } else {
        this.#log.info(
          { backend: this.backend.name, resyncInterval: this.#resync() },
          'following kernel change events: drift is repaired as it happens, the resync stays as a safety net',
        );
      }
      this.#subscribedBefore = true;
      // Whatever changed while nobody was listening (before the first start, between restarts).
      this.#request('event');
    },
    change: (what) => {
      this.metrics.changeEvent('ours');
      this.#lastChange = what;
      this.#schedule();
    },
    other: () => {
      this.metrics.changeEvent('other');
      this.#counted();
    },
    lost: (detail) => {
      this.#noise('kernel change events were lost; reconciling', { detail });
      this.#request('event');
      this.#counted();
    },
    diagnostic: (line) => this.#noise('the change event stream wrote on stderr', { line }),
  };

  /** Trailing debounce, bounded: one reconcile per burst (a transaction is a burst of events). */
  #schedule(): void {
    const now = Date.now();
    this.#firstPendingAt ??= now;
    clearTimeout(this.#debounce);
    const wait = Math.max(0, Math.min(EVENT_DEBOUNCE_MS, this.#firstPendingAt + EVENT_MAX_WAIT_MS - now));
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      this.#firstPendingAt = undefined;
      this.#request('event');
    }, wait);
  }

  #request(trigger: 'event' | 'poll'): void {
    if (this.#abort.signal.aborted) return;
    if (Date.now() < this.#pausedUntil) {
      this.#missedWhilePaused = true;
      return;
    }
    if (trigger === 'event') this.#log.debug({ change: this.#lastChange }, 'reconciling after a kernel change event');
    void this.reconciler.trigger(trigger);
  }

  /** The loop cap: counts event-driven applies that changed something, and pauses them in a fight. */
  #outcome(outcome: ReconcileOutcome): void {
    if ((outcome.trigger !== 'event' && outcome.trigger !== 'poll') || !outcome.changed) return;
    const now = Date.now();
    this.#repairs = this.#repairs.filter((at) => now - at < EVENT_REPAIR_WINDOW_MS);
    this.#repairs.push(now);
    if (this.#repairs.length <= EVENT_REPAIR_LIMIT) return;
    this.#repairs = [];
    if (now - this.#lastPauseAt > EVENT_REPAIR_PAUSE_MAX_MS * 2) this.#pauses.reset();
    this.#lastPauseAt = now;
    const pause = this.#pauses.next();
    this.#pausedUntil = now + pause;
    this.metrics.eventRepairsPaused();
    this.#log.warn(
      {
        backend: this.backend.name,
        repairs: EVENT_REPAIR_LIMIT + 1,
        withinMs: EVENT_REPAIR_WINDOW_MS,
        lastChange: this.#lastChange,
        pauseMs: pause,
        resyncInterval: this.#resync(),
      },
      'our rules were changed again after each repair; repairs from change events pause, the resync still repairs',
    );
    clearTimeout(this.#pauseTimer);
    this.#pauseTimer = setTimeout(() => {
      this.#pausedUntil = 0;
      if (!this.#missedWhilePaused) return;
      this.#missedWhilePaused = false;
      this.#request('event');
    }, pause);
  }

  /** Logs at most one line per DIAGNOSTIC_LOG_INTERVAL_MS, counting the ones left out. */
  #noise(message: string, fields: Record<string, string>): void {
    const now = Date.now();
    if (now - this.#noisy.loggedAt < DIAGNOSTIC_LOG_INTERVAL_MS) {
      this.#noisy.suppressed += 1;
      return;
    }
    const suppressed = this.#noisy.suppressed;
    this.#noisy = { loggedAt: now, suppressed: 0 };
    this.#log.warn({ backend: this.backend.name, ...fields, suppressed }, message);
  }

  #resync(): string {
    return formatDuration(this.config.resyncIntervalMs);
  }
}
