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
        { backend: this.backend.name },
        `${this.backend.name} has no kernel change events: drift is repaired by the resync, every ${this.#resync()}`,
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
    await this.#running;
  }

  async #follow(watch: NonNullable<FirewallBackend['watchChanges']>): Promise<void> {
    const { signal } = this.#abort;
    while (!signal.aborted) {
      const started = Date.now();
      let end: ChangeStreamEnd | undefined;
      let failure: unknown;
      try {
        end = await watch(this.#listener, signal);
      } catch (error) {
        failure = error;
      }
      this.metrics.changeStream(false);
      if (signal.aborted) return;
      if (
        isRouteControllerError(failure, ErrorCodes.CommandNotFound) ||
        isRouteControllerError(failure, ErrorCodes.FirewallUnsupported)
      ) {
        // Retrying cannot install the monitor, nor give the backend events: say so once, and leave
        // drift to the resync.
        this.#log.warn(
          { backend: this.backend.name, err: failure, code: failure.code, hint: failure.hint },
          `no kernel change events: ${failure.message}; drift is repaired by the resync only, every ${this.#resync()}`,
        );
        return;
      }
      if (Date.now() - started >= STREAM_HEALTHY_MS) this.#restarts.reset();
      const delay = this.#restarts.next();
      this.metrics.changeStreamRestarted();
      const why = end?.reason ?? errorMessage(failure);
      this.#log.warn(
        { backend: this.backend.name, err: failure, restartInMs: delay },
        `kernel change events stopped (${why}); restarting in ${delay} ms, the resync repairs drift meanwhile`,
      );
      await sleep(delay, signal);
    }
  }

  readonly #listener: ChangeListener = {
    ready: () => {
      this.metrics.changeStream(true);
      if (this.#subscribedBefore) {
        this.#log.info({ backend: this.backend.name }, 'kernel change events resumed; reconciling for what was missed');
      } else {
        this.#log.info(
          { backend: this.backend.name },
          `following kernel change events: drift is repaired as it happens (the resync, every ${this.#resync()}, stays as a safety net)`,
        );
      }
      this.#subscribedBefore = true;
      // Whatever changed while nobody was listening (before the first start, between restarts).
      this.#request();
    },
    change: (what) => {
      this.metrics.changeEvent('ours');
      this.#lastChange = what;
      this.#schedule();
    },
    other: () => this.metrics.changeEvent('other'),
    lost: (detail) => {
      this.#noise(`kernel change events were lost (${detail}); reconciling`);
      this.#request();
    },
    diagnostic: (line) => this.#noise(`the change event stream says: ${line}`),
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
      this.#request();
    }, wait);
  }

  #request(): void {
    if (this.#abort.signal.aborted) return;
    if (Date.now() < this.#pausedUntil) {
      this.#missedWhilePaused = true;
      return;
    }
    this.#log.debug({ change: this.#lastChange }, 'reconciling after a kernel change event');
    void this.reconciler.trigger('event');
  }

  /** The loop cap: counts event-driven applies that changed something, and pauses them in a fight. */
  #outcome(outcome: ReconcileOutcome): void {
    if (outcome.trigger !== 'event' || !outcome.changed) return;
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
      { backend: this.backend.name, lastChange: this.#lastChange, pauseMs: pause },
      `our rules were changed again after each repair (${EVENT_REPAIR_LIMIT + 1} repairs from change events within ${formatDuration(EVENT_REPAIR_WINDOW_MS)}, the last after: ${this.#lastChange}): another process keeps changing them. Repairs from change events pause for ${formatDuration(pause)}; the resync, every ${this.#resync()}, still repairs`,
    );
    clearTimeout(this.#pauseTimer);
    this.#pauseTimer = setTimeout(() => {
      this.#pausedUntil = 0;
      if (!this.#missedWhilePaused) return;
      this.#missedWhilePaused = false;
      this.#request();
    }, pause);
  }

  /** Logs at most one line per DIAGNOSTIC_LOG_INTERVAL_MS, counting the ones left out. */
  #noise(message: string): void {
    const now = Date.now();
    if (now - this.#noisy.loggedAt < DIAGNOSTIC_LOG_INTERVAL_MS) {
      this.#noisy.suppressed += 1;
      return;
    }
    const suppressed = this.#noisy.suppressed;
    this.#noisy = { loggedAt: now, suppressed: 0 };
    this.#log.warn({ backend: this.backend.name, suppressed }, message);
  }

  #resync(): string {
    return formatDuration(this.config.resyncIntervalMs);
  }
}
