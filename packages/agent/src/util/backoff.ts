/** How a Backoff grows. Times in milliseconds. */
export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /**
   * Each delay is shortened by up to this fraction, at random (0 to 1; default 0): agents on many
   * nodes that failed together do not retry together. It never lengthens a delay, so `maxMs` holds.
   */
  readonly jitter?: number;
  /**
   * Forget earlier failures when the last delay was asked for longer ago than this: a loop that
   * has been healthy that long starts again from `initialMs` (client-go's backoff manager resets
   * after 2 minutes). Unset: only reset() forgets.
   */
  readonly resetAfterMs?: number;
  /** For tests: [0, 1), default Math.random. */
  readonly random?: () => number;
  /** For tests: a monotonic clock in ms, default performance.now. */
  readonly now?: () => number;
}

/** Exponential backoff: `initialMs`, doubled after each failure, capped at `maxMs`, with jitter. */
export class Backoff {
  readonly #options: BackoffOptions;
  readonly #random: () => number;
  readonly #now: () => number;
  #failures = 0;
  #lastAt = Number.NEGATIVE_INFINITY;

  constructor(options: BackoffOptions) {
    this.#options = options;
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? (() => performance.now());
  }

  /** The delay before the next attempt, counting this failure. */
  next(): number {
    const { initialMs, maxMs, jitter = 0, resetAfterMs } = this.#options;
    const now = this.#now();
    if (resetAfterMs !== undefined && now - this.#lastAt > resetAfterMs) this.#failures = 0;
    this.#lastAt = now;
    const base = Math.min(maxMs, initialMs * 2 ** this.#failures);
    this.#failures += 1;
    return Math.round(base * (1 - jitter * this.#random()));
  }

  /** Failures counted since the last reset. */
  get failures(): number {
    return this.#failures;
  }

  reset(): void {
    this.#failures = 0;
  }
}
